//! What landgate writes into a wrapped container and reads back from it: the
//! PATH entry, the env markers and the exec handlers (probes and lifecycle
//! hooks, which the kubelet runs inside the container without the
//! entrypoint: unwrapped, they would escape the sandbox).

use std::borrow::Borrow;

use json_patch::jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use landgate_policy::argv;
use landgate_policy::env::ACTIVE as ACTIVE_ENV;
use landgate_policy::layout::WRAPPER_DIR;

use crate::patch::{Ops, With, at};

pub(crate) fn prefixed_path(path: &str) -> String {
    if path.is_empty() {
        WRAPPER_DIR.to_owned()
    } else {
        format!("{WRAPPER_DIR}:{path}")
    }
}

/// `path` without landgate's `/landgate/bin` entry in front (whole entries
/// only: `/landgate/binx` is someone else's).
pub(crate) fn strip_path(path: &str) -> &str {
    match path.strip_prefix(WRAPPER_DIR) {
        Some("") => "",
        Some(rest) => rest.strip_prefix(':').unwrap_or(path),
        None => path,
    }
}

/// `value` written so that the kubelet passes it on unchanged: it expands
/// `$(VAR)` in env values and turns `$$` into `$`, so the policy that runs
/// would otherwise differ from the one previewed and hashed (a writable
/// path `/data/$(HOME)`).
pub(crate) fn kubelet_literal(value: &str) -> String {
    value.replace('$', "$$")
}

/// `LANDGATE_ACTIVE` set to nothing, as a patch value. Written without a
/// value, as the API server stores an empty one.
pub(crate) fn active_marker() -> serde_json::Value {
    serde_json::json!({ "name": ACTIVE_ENV })
}

pub(crate) fn is_active_marker(var: &EnvVar) -> bool {
    var.name == ACTIVE_ENV
        && var.value_from.is_none()
        && var.value.as_deref().unwrap_or_default().is_empty()
}

/// A plain `name=value` env entry, as a patch value.
pub(crate) fn env_var(name: &str, value: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "value": value })
}

/// The PATH that wins (the kubelet takes the last duplicate), in a
/// container's env or in the part of it landgate keeps.
pub(crate) fn last_path<E: Borrow<EnvVar>>(env: &[E]) -> Option<(usize, &EnvVar)> {
    env.iter()
        .map(Borrow::borrow)
        .enumerate()
        .rev()
        .find(|(_, e)| e.name == "PATH")
}

/// The same handlers as [`exec_handlers`], mutably (Rust cannot share one
/// walk between the two borrows).
pub(crate) fn exec_commands_mut(c: &mut Container) -> Vec<&mut Vec<String>> {
    let lifecycle = c.lifecycle.as_mut();
    let (post_start, pre_stop) = match lifecycle {
        Some(l) => (l.post_start.as_mut(), l.pre_stop.as_mut()),
        None => (None, None),
    };
    let probes = [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| p.exec.as_mut());
    let hooks = [post_start, pre_stop]
        .into_iter()
        .flatten()
        .filter_map(|h| h.exec.as_mut());
    probes
        .chain(hooks)
        .filter_map(|e| e.command.as_mut())
        .collect()
}

/// The container's exec probes and exec lifecycle hooks, with the JSON path
/// of their handler: the kubelet runs these inside the container without
/// the entrypoint, so unwrapped they would escape the sandbox.
pub(crate) fn exec_handlers(c: &Container) -> Vec<([&'static str; 2], &[String])> {
    let mut found = Vec::new();
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        if let Some(command) = probe
            .as_ref()
            .and_then(|p| p.exec.as_ref())
            .and_then(|e| e.command.as_deref())
            .filter(|c| !c.is_empty())
        {
            // The second token is never used for probes.
            found.push(([field, ""], command));
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        for (field, handler) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(command) = handler
                .as_ref()
                .and_then(|h| h.exec.as_ref())
                .and_then(|e| e.command.as_deref())
                .filter(|c| !c.is_empty())
            {
                found.push((["lifecycle", field], command));
            }
        }
    }
    found
}

/// The `command` of the exec handler at `field` (from [`exec_handlers`]).
pub(crate) fn exec_command_ptr(base: &PointerBuf, field: [&str; 2]) -> PointerBuf {
    at(base, field, []).with("exec").with("command")
}

pub(crate) fn prefix_exec_handlers(ops: &mut Ops, base: &PointerBuf, c: &Container) {
    for (field, command) in exec_handlers(c) {
        if argv::unwrap_exec(command).is_none() {
            ops.add(
                exec_command_ptr(base, field),
                serde_json::json!(argv::exec(command)),
            );
        }
    }
}
