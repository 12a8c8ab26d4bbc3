//! The command line, parsed by hand: the launcher sits in front of every
//! process in a sandboxed pod, so it carries no argument-parsing dependency.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use landgate_policy::POLICY_ENV;
use landgate_policy::argv::{EXEC, INSTALL, WRAPPERS_FLAG};
use landgate_policy::layout::LAUNCHER_NAME;
use landgate_policy::wrappers::{self, DEFAULT as DEFAULT_WRAPPERS};

use crate::error::LaunchError;

/// Comma-separated wrapper names for `install` when `--wrappers` is absent.
pub use landgate_policy::env::WRAPPERS as WRAPPERS_ENV;

pub const USAGE: &str = "\
landgate: apply a Landlock policy to a command, then become it

usage:
  landgate exec [--policy-env NAME | --policy-file FILE] [--dry-run] [--] CMD [ARG...]
      Apply the policy (default: from $LANDGATE_POLICY) and execve CMD, which is
      looked up on PATH skipping the launcher itself. --dry-run prints the
      ruleset and status like `check` and runs nothing.
  landgate check [--policy-env NAME | --policy-file FILE] [--] [CMD [ARG...]]
      Print the ruleset that would be applied and the status it would reach.
  landgate features [--json]
      Print the kernel's Landlock ABI and which rights and scopes it enforces.
  landgate install DIR [--wrappers NAME,NAME...]
      Copy the launcher to DIR/landgate and create DIR/bin/NAME symlinks
      (default names from $LANDGATE_WRAPPERS, else sh,bash,ash,dash,zsh,
      busybox,python,python3,perl,ruby,node,php,tar,curl,wget,nc).
  NAME [ARG...]  (invoked through a DIR/bin/NAME symlink)
      Apply the policy from $LANDGATE_POLICY and execve the next NAME on PATH;
      if $LANDGATE_ACTIVE=1 (already sandboxed) exec it directly.

environment:
  LANDGATE_POLICY   the policy JSON (written by the landgate webhook)
  LANDGATE_QUIET=1  do not print the status line when fully enforced
  LANDGATE_ACTIVE   set to 1 for the command once sandboxed
  LANDGATE_WRAPPERS default wrapper names for install

exit codes (before the command runs; afterwards they are the command's):
  120 install failed   121 policy missing or invalid
  122 enforcement required but not reachable   123 sandbox setup failed
  125 usage error   126 command cannot be executed   127 command not found
";

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    Env(String),
    File(PathBuf),
}

impl Default for PolicySource {
    fn default() -> Self {
        Self::Env(POLICY_ENV.to_owned())
    }
}

/// What the launcher was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Exec {
        policy: PolicySource,
        dry_run: bool,
        command: Vec<OsString>,
    },
    Check {
        policy: PolicySource,
        command: Vec<OsString>,
    },
    Features {
        json: bool,
    },
    Install {
        dir: PathBuf,
        wrappers: Vec<String>,
    },
    /// Invoked through a wrapper symlink named `name`.
    Wrapper {
        argv0: OsString,
        name: OsString,
        args: Vec<OsString>,
    },
    Help,
    Version,
}

/// Parses `argv` (including `argv[0]`). `wrappers_env` is `$LANDGATE_WRAPPERS`.
pub fn parse(argv: Vec<OsString>, wrappers_env: Option<&str>) -> Result<Invocation, LaunchError> {
    let mut argv = argv.into_iter();
    let argv0 = argv.next().unwrap_or_default();
    let args: Vec<OsString> = argv.collect();
    if let Some(name) = wrapper_name(&argv0) {
        return Ok(Invocation::Wrapper { argv0, name, args });
    }
    let mut args = args.into_iter();
    let Some(sub) = args.next() else {
        return Err(usage(
            "missing subcommand: expected exec, check, features or install",
        ));
    };
    let sub = sub.to_string_lossy().into_owned();
    let mut rest = Args { rest: args };
    match sub.as_str() {
        EXEC | "check" => {
            let mut policy = None;
            let mut dry_run = false;
            while let Some(flag) = rest.next_flag() {
                match flag.name.as_str() {
                    "--policy-env" => {
                        set_policy(&mut policy, PolicySource::Env(rest.value(&flag)?))?
                    }
                    "--policy-file" => set_policy(
                        &mut policy,
                        PolicySource::File(PathBuf::from(rest.value(&flag)?)),
                    )?,
                    "--dry-run" if sub == EXEC => dry_run = rest.no_value(&flag, true)?,
                    "-h" | "--help" => return Ok(Invocation::Help),
                    other => return Err(usage(&format!("{sub}: unknown option {other}"))),
                }
            }
            let command: Vec<OsString> = rest.rest.collect();
            let policy = policy.unwrap_or_default();
            if sub == "check" {
                return Ok(Invocation::Check { policy, command });
            }
            if command.is_empty() {
                return Err(usage("exec: missing the command to run after --"));
            }
            Ok(Invocation::Exec {
                policy,
                dry_run,
                command,
            })
        }
        "features" => {
            let mut json = false;
            while let Some(flag) = rest.next_flag() {
                match flag.name.as_str() {
                    "--json" => json = rest.no_value(&flag, true)?,
                    "-h" | "--help" => return Ok(Invocation::Help),
                    other => return Err(usage(&format!("features: unknown option {other}"))),
                }
            }
            if let Some(extra) = rest.rest.next() {
                return Err(usage(&format!(
                    "features: unexpected argument {}",
                    extra.to_string_lossy()
                )));
            }
            Ok(Invocation::Features { json })
        }
        INSTALL => {
            let mut dir = None;
            let mut wrappers = None;
            loop {
                if let Some(flag) = rest.next_flag() {
                    match flag.name.as_str() {
                        WRAPPERS_FLAG => wrappers = Some(parse_wrappers(&rest.value(&flag)?)?),
                        "-h" | "--help" => return Ok(Invocation::Help),
                        other => return Err(usage(&format!("install: unknown option {other}"))),
                    }
                } else if let Some(arg) = rest.rest.next() {
                    if dir.replace(PathBuf::from(arg)).is_some() {
                        return Err(usage("install: expected exactly one DIR"));
                    }
                } else {
                    break;
                }
            }
            let dir = dir.ok_or_else(|| usage("install: missing DIR"))?;
            let wrappers = match (wrappers, wrappers_env) {
                (Some(w), _) => w,
                (None, Some(env)) => parse_wrappers(env)?,
                (None, None) => DEFAULT_WRAPPERS.iter().map(|s| (*s).to_owned()).collect(),
            };
            Ok(Invocation::Install { dir, wrappers })
        }
        "help" | "-h" | "--help" => Ok(Invocation::Help),
        "version" | "-V" | "--version" => Ok(Invocation::Version),
        other => Err(usage(&format!(
            "unknown subcommand {other:?}: expected exec, check, features or install"
        ))),
    }
}

/// `Some(name)` when `argv[0]` names a wrapper rather than the launcher. A
/// leading `-` (login shells: `-sh`) is not part of the name.
fn wrapper_name(argv0: &OsStr) -> Option<OsString> {
    let base = Path::new(argv0).file_name()?.to_string_lossy();
    let base = base.strip_prefix('-').unwrap_or(&base);
    (!base.is_empty() && base != LAUNCHER_NAME).then(|| OsString::from(base))
}

fn parse_wrappers(list: &str) -> Result<Vec<String>, LaunchError> {
    let names: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for name in &names {
        wrappers::validate_name(name).map_err(|m| usage(&format!("--wrappers: {m}")))?;
    }
    Ok(names)
}

fn set_policy(slot: &mut Option<PolicySource>, source: PolicySource) -> Result<(), LaunchError> {
    if slot.replace(source).is_some() {
        return Err(usage("give at most one of --policy-env and --policy-file"));
    }
    Ok(())
}

fn usage(message: &str) -> LaunchError {
    LaunchError::Usage(message.to_owned())
}

struct Flag {
    name: String,
    inline: Option<OsString>,
}

/// Options up to the first non-option or `--`.
struct Args {
    rest: std::vec::IntoIter<OsString>,
}

impl Args {
    fn next_flag(&mut self) -> Option<Flag> {
        let next = self.rest.as_slice().first()?;
        let bytes = next.as_encoded_bytes();
        if !bytes.starts_with(b"-") || bytes == b"-" {
            return None;
        }
        let arg = self.rest.next()?.to_string_lossy().into_owned();
        if arg == "--" {
            return None;
        }
        Some(match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => Flag {
                name: name.to_owned(),
                inline: Some(value.into()),
            },
            _ => Flag {
                name: arg,
                inline: None,
            },
        })
    }

    fn value(&mut self, flag: &Flag) -> Result<String, LaunchError> {
        let value = match &flag.inline {
            Some(v) => v.clone(),
            None => self
                .rest
                .next()
                .ok_or_else(|| usage(&format!("{} needs a value", flag.name)))?,
        };
        value
            .into_string()
            .map_err(|_| usage(&format!("{}: value is not valid UTF-8", flag.name)))
    }

    fn no_value<T>(&self, flag: &Flag, value: T) -> Result<T, LaunchError> {
        match flag.inline {
            Some(_) => Err(usage(&format!("{} takes no value", flag.name))),
            None => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn parse_str(args: &[&str]) -> Result<Invocation, LaunchError> {
        parse(args.iter().map(OsString::from).collect(), None)
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[rstest]
    #[case(&["landgate", "exec", "--", "sh", "-c", "x"], PolicySource::default(), false, &["sh", "-c", "x"])]
    #[case(&["/landgate/landgate", "exec", "sh", "--x"], PolicySource::default(), false, &["sh", "--x"])]
    #[case(&["landgate", "exec", "--dry-run", "--policy-env", "P", "--", "true"], PolicySource::Env("P".into()), true, &["true"])]
    #[case(&["landgate", "exec", "--policy-file=/p.json", "--", "--weird"], PolicySource::File("/p.json".into()), false, &["--weird"])]
    fn exec_forms(
        #[case] argv: &[&str],
        #[case] policy: PolicySource,
        #[case] dry_run: bool,
        #[case] command: &[&str],
    ) {
        assert_eq!(
            parse_str(argv).unwrap(),
            Invocation::Exec {
                policy,
                dry_run,
                command: os(command)
            }
        );
    }

    #[rstest]
    #[case(&["landgate"], "missing subcommand")]
    #[case(&["landgate", "exec"], "missing the command")]
    #[case(&["landgate", "exec", "--"], "missing the command")]
    #[case(&["landgate", "exec", "--policy-env"], "--policy-env needs a value")]
    #[case(&["landgate", "exec", "--policy-env", "A", "--policy-file", "B", "--", "x"], "at most one")]
    #[case(&["landgate", "exec", "--frobnicate", "--", "x"], "unknown option --frobnicate")]
    #[case(&["landgate", "check", "--dry-run"], "unknown option --dry-run")]
    #[case(&["landgate", "features", "--json=yes"], "takes no value")]
    #[case(&["landgate", "install"], "missing DIR")]
    #[case(&["landgate", "install", "/a", "/b"], "exactly one DIR")]
    #[case(&["landgate", "install", "/a", "--wrappers", "sh,landgate"], "launcher's own name")]
    #[case(&["landgate", "run"], "unknown subcommand")]
    fn usage_errors(#[case] argv: &[&str], #[case] needle: &str) {
        let err = parse_str(argv).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
        assert!(err.to_string().contains(needle), "{err}");
    }

    #[test]
    fn check_features_install() {
        assert_eq!(
            parse_str(&["landgate", "check"]).unwrap(),
            Invocation::Check {
                policy: PolicySource::default(),
                command: vec![]
            }
        );
        assert_eq!(
            parse_str(&["landgate", "features", "--json"]).unwrap(),
            Invocation::Features { json: true }
        );
        assert_eq!(
            parse_str(&["landgate", "install", "--wrappers", "sh, bash", "/landgate"]).unwrap(),
            Invocation::Install {
                dir: "/landgate".into(),
                wrappers: vec!["sh".into(), "bash".into()]
            }
        );
        let Invocation::Install { wrappers, .. } =
            parse(os(&["landgate", "install", "/d"]), Some("python3")).unwrap()
        else {
            panic!("not install");
        };
        assert_eq!(wrappers, ["python3"]);
        let Invocation::Install { wrappers, .. } =
            parse_str(&["landgate", "install", "/d"]).unwrap()
        else {
            panic!("not install");
        };
        assert_eq!(wrappers.len(), DEFAULT_WRAPPERS.len());
    }

    #[rstest]
    #[case("sh", "sh")]
    #[case("/landgate/bin/python3", "python3")]
    #[case("-bash", "bash")]
    fn wrapper_mode_by_argv0(#[case] argv0: &str, #[case] name: &str) {
        assert_eq!(
            parse_str(&[argv0, "-c", "echo"]).unwrap(),
            Invocation::Wrapper {
                argv0: argv0.into(),
                name: name.into(),
                args: os(&["-c", "echo"])
            }
        );
    }

    #[test]
    fn usage_spells_the_contract_as_the_parser_does() {
        // The help text is one literal; this keeps it from drifting from
        // the names the webhook writes.
        let flat: String = USAGE.split_whitespace().collect();
        for needle in [
            format!("{LAUNCHER_NAME}{EXEC}"),
            format!("{LAUNCHER_NAME}{INSTALL}DIR[{WRAPPERS_FLAG}"),
            DEFAULT_WRAPPERS.join(","),
            POLICY_ENV.to_owned(),
            WRAPPERS_ENV.to_owned(),
        ] {
            assert!(flat.contains(&needle), "{needle}");
        }
    }

    #[test]
    fn usage_mentions_every_exit_code() {
        for code in 120..=127 {
            if code != 124 {
                assert!(USAGE.contains(&code.to_string()), "{code}");
            }
        }
    }
}
