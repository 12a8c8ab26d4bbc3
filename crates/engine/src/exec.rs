//! `kubectl exec` and `kubectl attach` into a pod landgate wrapped: the API
//! server admits them as CONNECT requests on `pods/exec` and `pods/attach`,
//! carrying `PodExecOptions` / `PodAttachOptions`, and passes a mutating
//! webhook's patch of the options on to the kubelet (see the README,
//! "kubectl exec"). Pure: the pod and its namespace's annotations in, a
//! decision out.
//!
//! Under `landgate.dev/exec: sandboxed` (the default) every exec, by any
//! path, of any program, is rewritten to run through the launcher, which
//! applies the container's own `LANDGATE_POLICY` (the exec'd process has
//! the container's environment); attach reaches the main process, already
//! sandboxed. `deny` refuses both; `allow` admits them unchanged (audited).
//! A container landgate did not wrap (an ephemeral one added under `allow`)
//! cannot run the launcher: an exec or attach there is refused unless
//! `allow`. Which containers are wrapped comes from the status, or from the
//! spec when the status is gone ([`wrapped_containers`]), and for ephemeral
//! containers from their shape ([`carries_wrapping`]): the pod is read
//! whole.

use std::collections::BTreeMap;

use landgate_policy::argv;

use k8s_openapi::api::core::v1::Pod;

use crate::derive::{self, ExecPolicy};
use crate::ephemeral::carries_wrapping;
use crate::status::wrapped_containers;

/// What the request asks for.
#[derive(Debug, Clone, Copy)]
pub enum Connect<'a> {
    /// `pods/exec`: the command, as sent.
    Exec(&'a [String]),
    /// `pods/attach`: the container's main process.
    Attach,
}

/// The decision for one exec or attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecDecision {
    /// Send this command instead: the original behind the launcher.
    Rewrite(Vec<String>),
    /// Admit unchanged, and why (the pod is not landgate's, the process is
    /// already sandboxed).
    Pass(String),
    /// Admit unchanged under `allow`: audited; the reason names the origin.
    Allowed(String),
    /// Refuse, with the message the user sees.
    Refuse(String),
}

/// Decides an exec or attach into `container` (as the request names it) of
/// `pod`, in `namespace` with `namespace_annotations`.
pub fn decide_exec(
    pod: &Pod,
    namespace: &str,
    namespace_annotations: &BTreeMap<String, String>,
    container: Option<&str>,
    request: Connect<'_>,
) -> ExecDecision {
    let what = match request {
        Connect::Exec(_) => "exec",
        Connect::Attach => "attach",
    };
    let no_annotations = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&no_annotations);
    let recorded = wrapped_containers(pod);
    let target = pod;
    let pod = format!(
        "{namespace}/{}",
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    if recorded.is_empty() {
        return ExecDecision::Pass(format!("{what}: pod {pod} is not wrapped by landgate"));
    }
    let (policy, origin) = match derive::exec_policy(annotations, namespace, namespace_annotations)
    {
        Ok(found) => found,
        Err(err) => return ExecDecision::Refuse(format!("{what} into pod {pod}: {err}")),
    };
    let said = derive::exec_said(policy, origin.as_ref());
    match policy {
        ExecPolicy::Deny => {
            return ExecDecision::Refuse(format!(
                "{what} into pod {pod} is refused: {said}. Ask the namespace's owner, or change the pod's annotation where the namespace allows it"
            ));
        }
        ExecPolicy::Allow => {
            return ExecDecision::Allowed(format!(
                "{what} into pod {pod} admitted unsandboxed: {said}"
            ));
        }
        ExecPolicy::Sandboxed => {}
    }
    let Some(container) = container.filter(|c| !c.is_empty()) else {
        return ExecDecision::Refuse(format!(
            "{what} into pod {pod} names no container, and landgate sandboxes an {what} per container: name it (kubectl {what} -c <container>)"
        ));
    };
    if !recorded.iter().any(|name| name == container) && !wrapped_ephemeral(target, container) {
        return ExecDecision::Refuse(format!(
            "{what} into container {container:?} of pod {pod} is refused: landgate did not wrap that container (an ephemeral container added unsandboxed, or one it does not know), so the {what} would run outside the sandbox ({said}). {what} into a wrapped container ({})",
            recorded.join(", ")
        ));
    }
    match request {
        Connect::Attach => ExecDecision::Pass(format!(
            "attach to container {container:?} of pod {pod}: its main process is sandboxed"
        )),
        Connect::Exec([]) => ExecDecision::Refuse(format!(
            "exec into container {container:?} of pod {pod} sends no command"
        )),
        Connect::Exec(command) if argv::unwrap_exec(command).is_some() => {
            ExecDecision::Pass(format!(
                "exec into container {container:?} of pod {pod} already runs through the launcher"
            ))
        }
        Connect::Exec(command) => ExecDecision::Rewrite(argv::exec(command)),
    }
}

/// Whether `container` is an ephemeral container of `pod` that carries
/// landgate's wrapping ([`carries_wrapping`]).
fn wrapped_ephemeral(pod: &Pod, container: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .any(|c| c.name == container && carries_wrapping(c))
}
