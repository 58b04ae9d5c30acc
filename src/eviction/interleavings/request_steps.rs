//! The steps of a request, taken on the world: [`super::request`] lists
//! them and the code each one stands for.

use std::sync::Arc;

use super::{
    request::{At, Outcome, Path, Refusal, Request},
    setting::{Answer, Flaw, NOW_MS, Row, SESSION, Stamped, TOKENS, USER, claims},
    world::World,
};
use crate::{
    LocalId, LocalUser, clock,
    engine::MAX_LOOKUPS,
    eviction::Subject,
    token::{
        cache::Cached,
        entry::{OrganizationRows, Resolved, VerifiedToken},
    },
};

/// What every resolution of the model resolves to.
fn resolved() -> Resolved {
    Resolved {
        user: LocalId::Int(1),
        organization: OrganizationRows::NotResolved,
    }
}

impl World {
    /// Runs request `index`'s next step.
    pub(super) fn request_step(&mut self, index: usize) -> Result<(), String> {
        let mut request = self.requests[index];
        let name = request.name;
        let token = TOKENS[usize::from(request.token)];
        let mut broken = None;
        request.at = match request.at {
            At::Generation => {
                let generation = self.ledger.generation();
                self.note(name, || {
                    format!("decide: ledger.generation() = {generation}")
                });
                At::Lookup { generation }
            }
            At::Lookup { generation } => {
                match self.tokens.get(token.as_bytes(), clock::at_ms(NOW_MS)) {
                    Cached::Hit(entry) => {
                        let index = self.entry_index(&entry);
                        request.entry = Some(index as u8);
                        self.note(name, || {
                            format!("decide: tokens.get({token}) = hit, entry #{index}")
                        });
                        At::Resolved {
                            generation,
                            hit_in: self.open_windows(),
                        }
                    }
                    Cached::Miss => {
                        self.note(name, || format!("decide: tokens.get({token}) = miss"));
                        At::Insert
                    }
                    Cached::Expired => unreachable!("nothing expires in the model"),
                }
            }
            At::Resolved { generation, hit_in } => {
                let entry = self.entry(request);
                match LocalUser::confirmed(entry, generation) {
                    Ok(_) => {
                        self.note(name, || {
                            format!(
                                "decide: LocalUser::confirmed(entry, {generation}) = ok: serves (repeat path)"
                            )
                        });
                        if hit_in & self.open_windows() != 0 {
                            broken = Some(format!(
                                "request {name} is served from the token cache, found there after an acknowledged event"
                            ));
                        }
                        At::Done(Outcome::Served(Path::Repeat))
                    }
                    Err(_) => {
                        self.note(name, || {
                            format!(
                                "decide: LocalUser::confirmed(entry, {generation}) = not confirmed"
                            )
                        });
                        self.first_of_attempt()
                    }
                }
            }
            At::Insert => {
                let made = Arc::new(VerifiedToken::new(claims(), 5_000));
                self.entries.push(Arc::clone(&made));
                let made_index = self.entries.len() - 1;
                let kept = self
                    .tokens
                    .insert(Box::from(token.as_bytes()), made, NOW_MS);
                let index = self.entry_index(&kept);
                request.entry = Some(index as u8);
                self.note(name, || {
                    format!(
                        "verify: tokens.insert({token}, entry #{made_index}) keeps entry #{index}"
                    )
                });
                self.first_of_attempt()
            }
            At::Stamp { checked } => {
                let stamp = self.ledger.stamp();
                self.note(name, || format!("resolve: ledger.stamp() = {stamp}"));
                if checked || self.flaw == Flaw::NoChecks {
                    At::CacheGet { stamp }
                } else {
                    At::Ended { stamp: Some(stamp) }
                }
            }
            At::Ended { stamp } => {
                let ended = self.ended.contains(SESSION, NOW_MS);
                self.note(name, || {
                    format!("resolve: ended.contains({SESSION}) = {ended}")
                });
                if ended {
                    At::Done(Outcome::Refused(Refusal::SessionEnded))
                } else {
                    At::Bans { stamp }
                }
            }
            At::Bans { stamp } => {
                let blocked = self.bans.is_blocked(USER);
                self.note(name, || {
                    format!("resolve: bans.is_blocked({USER}) = {blocked}")
                });
                match (blocked, stamp) {
                    (true, _) => At::Done(Outcome::Refused(Refusal::UserBanned)),
                    (false, Some(stamp)) => At::CacheGet { stamp },
                    (false, None) => At::Stamp { checked: true },
                }
            }
            At::CacheGet { stamp } => match self.users.cached {
                Some(cached) => {
                    self.note(name, || format!("users.get({USER}) = {cached:?}"));
                    self.answered(cached, stamp)
                }
                None => {
                    self.note(name, || format!("users.get({USER}) = miss"));
                    At::TryGetWith { stamp }
                }
            },
            At::TryGetWith { stamp } => match self.users.cached {
                Some(cached) => {
                    self.note(name, || {
                        format!("users.try_get_with({USER}) finds {cached:?}")
                    });
                    self.answered(cached, stamp)
                }
                None if self.users.loading => {
                    self.note(name, || {
                        format!("users.try_get_with({USER}) waits on the load in flight")
                    });
                    At::Wait { stamp }
                }
                None => {
                    self.users.loading = true;
                    self.note(name, || {
                        format!("users.try_get_with({USER}) loads, stamped {stamp}")
                    });
                    At::Load { stamp }
                }
            },
            At::Load { stamp } => {
                let answer = self.find_or_create();
                self.note(name, || {
                    format!("store: find_or_create({USER}) = {answer:?}")
                });
                At::Complete { stamp, answer }
            }
            At::Complete { stamp, answer } => {
                let loaded = Stamped { answer, stamp };
                self.users.cached = Some(loaded);
                self.users.loading = false;
                self.note(name, || format!("users: load done, {loaded:?} cached"));
                for other in 0..self.requests.len() {
                    if let At::Wait { stamp: own } = self.requests[other].at {
                        let stamp = if self.flaw == Flaw::StampedByWaiter {
                            own
                        } else {
                            stamp
                        };
                        let waiter = self.requests[other].name;
                        self.note(waiter, || {
                            format!("users.try_get_with({USER}) woken with {loaded:?}")
                        });
                        self.requests[other].at = self.answered(Stamped { answer, stamp }, own);
                    }
                }
                self.answered(loaded, stamp)
            }
            At::Wait { .. } => unreachable!("a waiting request is not scheduled"),
            At::ConfirmBanned { answer } => {
                let read = [(Subject::User(USER), answer)];
                let confirmed = self.ledger.confirm(&read);
                self.note(name, || {
                    format!("resolve: banned row: ledger.confirm(user@{answer}) = {confirmed:?}")
                });
                match confirmed {
                    Some(_) => At::Done(Outcome::Refused(Refusal::UserBanned)),
                    None => At::Invalidate,
                }
            }
            At::Confirm { stamp, answer } => {
                let answers = [
                    (Subject::User(USER), answer),
                    (Subject::Session(SESSION), stamp),
                ];
                let confirmed = if self.flaw == Flaw::NoConfirm {
                    Some(self.ledger.generation())
                } else {
                    self.ledger.confirm(&answers)
                };
                self.note(name, || {
                    format!(
                        "resolve: ledger.confirm(user@{answer}, session@{stamp}) = {confirmed:?}"
                    )
                });
                match confirmed {
                    Some(generation) => {
                        if self.open_windows() != 0 {
                            broken = Some(format!(
                                "request {name} is confirmed, and will be served, after an acknowledged event"
                            ));
                        }
                        At::Remember { generation }
                    }
                    None => At::Invalidate,
                }
            }
            At::Invalidate => {
                self.users.cached = None;
                request.attempt += 1;
                let again = usize::from(request.attempt) < MAX_LOOKUPS;
                self.note(name, || {
                    format!("resolve: users.invalidate({USER}); again: {again}")
                });
                if again {
                    self.first_of_attempt()
                } else {
                    At::Done(Outcome::Refused(Refusal::StoreUnavailable))
                }
            }
            At::Remember { generation } => {
                self.entry(request).remember(generation, resolved());
                self.note(name, || {
                    format!("resolve: entry.remember({generation}); serves")
                });
                At::Done(Outcome::Served(Path::Lookup))
            }
            At::Done(_) => unreachable!("a request done is not scheduled"),
        };
        if let At::Done(outcome) = request.at {
            self.note(name, || format!("=> {outcome:?}"));
        }
        self.requests[index] = request;
        broken.map_or(Ok(()), Err)
    }

    fn entry(&self, request: Request) -> Arc<VerifiedToken> {
        let index = request.entry.expect("a request resolving has an entry");
        Arc::clone(&self.entries[usize::from(index)])
    }

    /// The first step of an attempt of `Engine::resolve`.
    fn first_of_attempt(&self) -> At {
        if self.flaw == Flaw::ChecksBeforeStamp {
            At::Ended { stamp: None }
        } else {
            At::Stamp { checked: false }
        }
    }

    /// Where a request goes with `answer`, as `Engine::user` and
    /// `Engine::resolve` read it; `stamp` is the request's own.
    fn answered(&self, answer: Stamped, stamp: u64) -> At {
        match answer.answer {
            Answer::Deleted => At::Done(Outcome::Refused(Refusal::UserDeleted)),
            Answer::Banned => At::ConfirmBanned {
                answer: answer.stamp,
            },
            Answer::Live => At::Confirm {
                stamp,
                answer: answer.stamp,
            },
        }
    }

    /// `UserStore::find_or_create` on the modeled row.
    fn find_or_create(&self) -> Answer {
        match self.row {
            Row::Live { banned: true, .. } => Answer::Banned,
            Row::Live { banned: false, .. } => Answer::Live,
            Row::Tombstone => Answer::Deleted,
        }
    }
}
