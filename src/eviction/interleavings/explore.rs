//! The scheduler: every schedule of a model's actors, depth first.
//!
//! A schedule is the sequence of actors whose next step runs, until no
//! actor has a step left. The explorer tries every enabled actor at every
//! point, each from a copy of the state it reached.
//!
//! States are remembered by their key. The model is deterministic and the
//! key holds everything its next steps depend on, so two schedules reaching
//! the same key have the same continuations: each is explored once, and the
//! schedules through it are counted, not run again. Every schedule is still
//! checked: each of its steps is an explored edge, and its final state an
//! explored leaf. [`Memo::Off`] runs every schedule to the end instead; a
//! test checks that both ways count and judge alike.

use std::{collections::HashMap, hash::Hash};

/// What the explorer needs of a model.
pub(super) trait Model: Clone {
    /// Everything the rest of a schedule depends on.
    type Key: Hash + Eq;

    /// The actors whose next step can run now; none when the schedule is
    /// complete.
    fn enabled(&self) -> Vec<usize>;

    /// Runs `actor`'s next step; `Err` says which property the step broke.
    fn step(&mut self, actor: usize) -> Result<(), String>;

    /// Checks the final state of a complete schedule.
    fn finish(&mut self) -> Result<(), String>;

    fn key(&self) -> Self::Key;

    /// Records a line for each step from now on, for a counterexample.
    fn trace(&mut self);

    /// The lines recorded.
    fn lines(&self) -> Vec<String>;
}

/// Whether states are remembered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Memo {
    On,
    /// Every schedule run to its end: slow, for cross-checking.
    Off,
}

/// What an exploration found.
#[derive(Debug)]
pub(super) struct Report {
    /// Complete schedules: every interleaving of the actors' steps.
    pub(super) schedules: u128,
    /// Schedules that break a property somewhere.
    pub(super) violating: u128,
    /// Distinct states explored.
    pub(super) states: usize,
    /// Steps run: the edges between states.
    pub(super) steps: u64,
    /// The first schedule found to break a property, step by step.
    pub(super) counterexample: Option<String>,
}

#[derive(Clone, Copy, Default)]
struct Tally {
    schedules: u128,
    violating: u128,
}

struct Explorer<'a, M: Model> {
    fresh: &'a dyn Fn() -> M,
    memo: Option<HashMap<M::Key, Tally>>,
    visited: usize,
    steps: u64,
    counterexample: Option<String>,
}

/// Explores every schedule of the model `fresh` builds.
pub(super) fn explore<M: Model>(fresh: &dyn Fn() -> M, memo: Memo) -> Report {
    let mut explorer = Explorer {
        fresh,
        memo: (memo == Memo::On).then(HashMap::new),
        visited: 0,
        steps: 0,
        counterexample: None,
    };
    let tally = explorer.visit(fresh(), &mut Vec::new());
    Report {
        schedules: tally.schedules,
        violating: tally.violating,
        states: explorer.visited,
        steps: explorer.steps,
        counterexample: explorer.counterexample,
    }
}

impl<M: Model> Explorer<'_, M> {
    fn visit(&mut self, mut model: M, path: &mut Vec<usize>) -> Tally {
        let key = self.memo.is_some().then(|| model.key());
        if let (Some(memo), Some(key)) = (&self.memo, &key)
            && let Some(tally) = memo.get(key)
        {
            return *tally;
        }
        self.visited += 1;
        let enabled = model.enabled();
        let tally = if enabled.is_empty() {
            let broken = model.finish().err();
            if let Some(broken) = &broken {
                self.keep_counterexample(path, None, broken);
            }
            Tally {
                schedules: 1,
                violating: u128::from(broken.is_some()),
            }
        } else {
            let mut tally = Tally::default();
            // The last child continues from this state; the others from copies.
            let last = enabled.len() - 1;
            let mut spare = Some(model);
            for (n, actor) in enabled.into_iter().enumerate() {
                let mut child = match &spare {
                    Some(model) if n < last => model.clone(),
                    _ => spare.take().expect("the state, for its last child"),
                };
                self.steps += 1;
                let broken = child.step(actor).err();
                if let Some(broken) = &broken {
                    self.keep_counterexample(path, Some(actor), broken);
                }
                path.push(actor);
                let below = self.visit(child, path);
                path.pop();
                tally.schedules += below.schedules;
                tally.violating += if broken.is_some() {
                    below.schedules
                } else {
                    below.violating
                };
            }
            tally
        };
        if let (Some(memo), Some(key)) = (&mut self.memo, key) {
            memo.insert(key, tally);
        }
        tally
    }

    /// Keeps the first counterexample: the schedule `path`, then `last` (or
    /// the final check), traced.
    fn keep_counterexample(&mut self, path: &[usize], last: Option<usize>, broken: &str) {
        if self.counterexample.is_some() {
            return;
        }
        let mut model = (self.fresh)();
        model.trace();
        for &actor in path {
            let _ = model.step(actor);
        }
        let _ = match last {
            Some(actor) => model.step(actor),
            None => model.finish(),
        };
        let mut text = String::new();
        for (n, line) in model.lines().iter().enumerate() {
            text.push_str(&format!("{:>3}. {line}\n", n + 1));
        }
        text.push_str(&format!("  => {broken}\n"));
        self.counterexample = Some(text);
    }
}
