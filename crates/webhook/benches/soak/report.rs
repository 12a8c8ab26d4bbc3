//! Bookkeeping: what each abuse attempt came to, and the lines and goals
//! printed at the end.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;

/// (outcome, as expected?) → count.
pub type Outcomes = BTreeMap<(String, bool), usize>;

/// Outcomes by class.
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<&'static str, Outcomes>>);

impl Tally {
    pub fn add(&self, class: &'static str, outcome: impl Into<String>, expected: bool) {
        *self
            .0
            .lock()
            .expect("tally")
            .entry(class)
            .or_default()
            .entry((outcome.into(), expected))
            .or_default() += 1;
    }

    /// Everything counted so far, leaving the tally empty.
    pub fn take(&self) -> BTreeMap<&'static str, Outcomes> {
        std::mem::take(&mut *self.0.lock().expect("tally"))
    }
}

#[derive(Default)]
pub struct Report {
    lines: Vec<String>,
    missed: Vec<String>,
}

impl Report {
    pub fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    pub fn goal(&mut self, met: bool, goal: impl Into<String>) {
        let goal = goal.into();
        self.lines
            .push(format!("  [{}] {goal}", if met { "ok" } else { "MISSED" }));
        if !met {
            self.missed.push(goal);
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        for line in &self.lines {
            println!("{line}");
        }
        if self.missed.is_empty() {
            println!("soak: every goal met");
            ExitCode::SUCCESS
        } else {
            println!("soak: {} goal(s) missed:", self.missed.len());
            for goal in &self.missed {
                println!("  - {goal}");
            }
            ExitCode::FAILURE
        }
    }
}
