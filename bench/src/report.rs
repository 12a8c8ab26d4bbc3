//! The table: printed as Markdown, and written to `bench/results.md`.

use std::fmt::Write as _;

/// One figure and what it is measured against.
pub struct Row {
    what: String,
    figure: String,
    ratio: Option<f64>,
    goal: String,
    note: String,
}

impl Row {
    pub fn new(what: &str, figure: String) -> Self {
        Self {
            what: what.to_owned(),
            figure,
            ratio: None,
            goal: String::new(),
            note: String::new(),
        }
    }

    /// The ratio to the section's baseline, measured in the same run.
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = Some(ratio);
        self
    }

    pub fn goal(mut self, goal: &str) -> Self {
        self.goal = goal.to_owned();
        self
    }

    pub fn note(mut self, note: &str) -> Self {
        self.note = note.to_owned();
        self
    }
}

#[derive(Default)]
pub struct Table {
    text: String,
}

impl Table {
    pub fn section(&mut self, title: &str) {
        let header = format!(
            "\n| {title} | figure | ratio to baseline | goal / note |\n| --- | ---: | ---: | --- |\n"
        );
        print!("{header}");
        self.text.push_str(&header);
    }

    pub fn row(&mut self, row: Row) {
        let ratio = row.ratio.map_or(String::new(), |r| format!("{r:.2}×"));
        let mut goal = row.goal;
        if !row.note.is_empty() {
            if !goal.is_empty() {
                goal.push_str("; ");
            }
            goal.push_str(&row.note);
        }
        let _ = writeln!(
            self.text,
            "| {} | {} | {} | {} |",
            row.what, row.figure, ratio, goal
        );
        // Printed as it is measured, so a long run shows progress.
        print!(
            "{}",
            self.text
                .lines()
                .last()
                .map_or(String::new(), |l| format!("{l}\n"))
        );
    }

    pub fn markdown(&self) -> &str {
        &self.text
    }
}

pub fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us < 100.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.0} µs")
    }
}
