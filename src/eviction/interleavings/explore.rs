//! The scheduler: the schedules of a system's actors, depth first, each
//! run from the start.
//!
//! The actors are real futures; a step polls one of them up to its next
//! yield point. Nothing can copy the state of real futures, so each
//! schedule is run again from a fresh system, replaying the choices of the
//! schedule it branches from (stateless model checking). A switch away
//! from an actor that could have gone on is a preemption; schedules are
//! explored up to a bound on preemptions, within which every schedule is
//! run and judged.

/// What the explorer needs of a system.
pub(super) trait System {
    /// The actors that can take a step now, in a fixed order; none when
    /// every actor is done, or every one left is blocked.
    fn runnable(&self) -> Vec<usize>;

    /// Polls `actor` up to its next yield point, or to its end.
    fn step(&mut self, actor: usize);

    /// Judges the complete schedule: `Err` names the property it broke.
    fn verdict(&mut self) -> Result<(), String>;

    /// The schedule's steps, one a line, for a counterexample.
    fn trace(&self) -> String;
}

/// What an exploration found.
#[derive(Debug)]
pub(super) struct Report {
    /// Schedules run to the end and judged.
    pub(super) schedules: usize,
    /// Schedules that broke a property.
    pub(super) violating: usize,
    /// The longest schedule, in steps.
    pub(super) longest: usize,
    /// The first schedule found to break a property, step by step.
    pub(super) counterexample: Option<String>,
}

/// A point of a schedule where more than one actor could step.
struct Branch {
    /// The actors allowed to step, the one taken first at their head.
    options: Vec<usize>,
    taken: usize,
}

/// Runs every schedule of the system `fresh` builds with at most
/// `max_preemptions` preemptions. Panics past `max_schedules`: a bound too
/// loose for a test.
pub(super) fn explore<S: System>(
    fresh: &dyn Fn() -> S,
    max_preemptions: usize,
    max_schedules: usize,
) -> Report {
    let mut report = Report {
        schedules: 0,
        violating: 0,
        longest: 0,
        counterexample: None,
    };
    let mut branches: Vec<Branch> = Vec::new();
    loop {
        let mut system = fresh();
        let (mut depth, mut previous, mut preemptions) = (0, None, 0);
        loop {
            let runnable = system.runnable();
            if runnable.is_empty() {
                break;
            }
            if depth == branches.len() {
                branches.push(Branch {
                    options: options(&runnable, previous, preemptions, max_preemptions),
                    taken: 0,
                });
            }
            let branch = &branches[depth];
            let actor = branch.options[branch.taken];
            if previous.is_some_and(|previous| previous != actor && runnable.contains(&previous)) {
                preemptions += 1;
            }
            system.step(actor);
            previous = Some(actor);
            depth += 1;
        }
        report.schedules += 1;
        report.longest = report.longest.max(depth);
        if let Err(broken) = system.verdict() {
            report.violating += 1;
            if report.counterexample.is_none() {
                report.counterexample = Some(format!("{}  => {broken}\n", system.trace()));
            }
        }
        assert!(
            report.schedules <= max_schedules,
            "more than {max_schedules} schedules: tighten the scenario"
        );
        // The deepest branch with an option left takes it; deeper ones go.
        while let Some(branch) = branches.last_mut() {
            if branch.taken + 1 < branch.options.len() {
                branch.taken += 1;
                break;
            }
            branches.pop();
        }
        if branches.is_empty() {
            return report;
        }
    }
}

/// The actors allowed to step: the previous one first if it can go on,
/// and the others only while preemptions are left.
fn options(
    runnable: &[usize],
    previous: Option<usize>,
    preemptions: usize,
    max_preemptions: usize,
) -> Vec<usize> {
    match previous.filter(|previous| runnable.contains(previous)) {
        Some(previous) if preemptions >= max_preemptions => vec![previous],
        Some(previous) => std::iter::once(previous)
            .chain(runnable.iter().copied().filter(|&actor| actor != previous))
            .collect(),
        None => runnable.to_vec(),
    }
}
