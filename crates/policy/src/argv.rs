//! The launcher's command lines that the webhook writes into pods, built and
//! recognised in one place so the two halves cannot drift apart.
//!
//! ```text
//! /landgate/landgate exec -- CMD [ARG...]                      wrapped command
//! /usr/local/bin/landgate install /landgate --wrappers a,b,c   landgate-init
//! ```
//!
//! The launcher's full grammar (`check`, `features`, `--policy-file`, …) is
//! in its `--help`; only these two forms cross the contract.

use crate::layout::{DIR, IMAGE_LAUNCHER, LAUNCHER};

/// The subcommand that applies the policy and execs the command.
pub const EXEC: &str = "exec";
/// The subcommand landgate-init runs.
pub const INSTALL: &str = "install";
/// `install`'s option naming the wrappers.
pub const WRAPPERS_FLAG: &str = "--wrappers";

/// What every wrapped command starts with.
pub const EXEC_PREFIX: [&str; 3] = [LAUNCHER, EXEC, "--"];

/// `/landgate/landgate exec -- <command…>`.
pub fn exec(command: &[String]) -> Vec<String> {
    EXEC_PREFIX
        .iter()
        .map(|s| (*s).to_owned())
        .chain(command.iter().cloned())
        .collect()
}

/// The original command of a wrapped one: `Some` only when `command` starts
/// with [`EXEC_PREFIX`] and has something after it.
pub fn unwrap_exec(command: &[String]) -> Option<&[String]> {
    let wrapped =
        command.len() > EXEC_PREFIX.len() && command.iter().zip(EXEC_PREFIX).all(|(a, b)| a == b);
    wrapped.then(|| &command[EXEC_PREFIX.len()..])
}

/// landgate-init's command: install the image's launcher and `wrappers` into
/// the volume.
pub fn install<S: AsRef<str>>(wrappers: &[S]) -> Vec<String> {
    let list: Vec<&str> = wrappers.iter().map(AsRef::as_ref).collect();
    vec![
        IMAGE_LAUNCHER.to_owned(),
        INSTALL.to_owned(),
        DIR.to_owned(),
        WRAPPERS_FLAG.to_owned(),
        list.join(","),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exec_round_trips_and_only_a_whole_prefix_unwraps() {
        let cmd = strings(&["nginx", "-g", "daemon off;"]);
        let wrapped = exec(&cmd);
        assert_eq!(wrapped[..3], EXEC_PREFIX);
        assert_eq!(unwrap_exec(&wrapped), Some(&cmd[..]));
        assert_eq!(unwrap_exec(&strings(&[LAUNCHER, "exec", "--"])), None);
        assert_eq!(unwrap_exec(&strings(&[LAUNCHER, "check", "--", "x"])), None);
        assert_eq!(unwrap_exec(&cmd), None);
    }

    #[test]
    fn install_names_the_wrappers() {
        assert_eq!(
            install(&["sh", "bash"]),
            strings(&[
                "/usr/local/bin/landgate",
                "install",
                "/landgate",
                "--wrappers",
                "sh,bash"
            ])
        );
    }
}
