//! The engine's `Settings` as the webhook's flags (the engine builds them
//! only with its `clap` feature, which the webhook turns on).
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use clap::Parser;
use landgate_engine::settings::{Profile, Settings, UnknownEntrypoint};
use landgate_policy::Enforcement;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

#[test]
fn flag_defaults_equal_default_impl() {
    let cli = Cli::try_parse_from(["x"]).unwrap();
    assert_eq!(cli.settings, Settings::default());
}

#[test]
fn flags_parse() {
    let cli = Cli::try_parse_from([
        "x",
        "--default-profile",
        "ports-only",
        "--default-enforcement",
        "required",
        "--excluded-namespaces",
        "kube-system,landgate",
        "--unknown-entrypoint",
        "reject",
    ])
    .unwrap();
    assert_eq!(cli.settings.default_profile, Profile::PortsOnly);
    assert_eq!(cli.settings.default_enforcement, Enforcement::Required);
    assert_eq!(
        cli.settings.excluded_namespaces,
        ["kube-system", "landgate"]
    );
    assert_eq!(cli.settings.unknown_entrypoint, UnknownEntrypoint::Reject);
}

#[test]
fn bad_wrapper_names_are_refused_at_start() {
    let err = Cli::try_parse_from(["x", "--wrappers", "sh,../bin/evil"])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a plain file name"), "{err}");
}

#[test]
fn bad_enforcement_flag_names_the_choices() {
    let err = Cli::try_parse_from(["x", "--default-enforcement", "strict"])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("expected best-effort or required"), "{err}");
}
