//! The exec decision (issue 12): every argv shape an exec may carry is
//! rewritten to run through the launcher under `sandboxed`; `deny` and
//! `allow` and the namespace floor; containers landgate did not wrap.

use std::collections::BTreeMap;

use rstest::rstest;
use serde_json::json;

use k8s_openapi::api::core::v1::Pod;

use crate::derive::{EXEC, STATUS};
use crate::exec::{Connect, ExecDecision, decide_exec};
use crate::mutate::*;
use crate::settings::Settings;

/// A wrapped pod with containers `app` and `side`, as landgate stored it,
/// with the annotations `extra` added.
fn wrapped_pod(extra: &[(&str, &str)]) -> Pod {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [
            {"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]},
            {"name": "side", "image": "busybox:1.36", "command": ["sleep", "3600"]}
        ]}
    }))
    .unwrap();
    let no = BTreeMap::new();
    let context = PodContext {
        namespace: "shop",
        namespace_annotations: &no,
        images: NO_IMAGES,
    };
    let m = mutate_pod(&Settings::default(), context, &pod).unwrap();
    let mut stored = crate::patch::apply(&pod, &m.patch).unwrap();
    let annotations = stored.metadata.annotations.get_or_insert_default();
    for (k, v) in extra {
        annotations.insert((*k).to_owned(), (*v).to_owned());
    }
    stored
}

fn words(command: &[&str]) -> Vec<String> {
    command.iter().map(|w| (*w).to_owned()).collect()
}

fn exec_in(
    pod: &Pod,
    namespace: &[(&str, &str)],
    container: Option<&str>,
    command: &[String],
) -> ExecDecision {
    let namespace: BTreeMap<String, String> = namespace
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    decide_exec(pod, "shop", &namespace, container, Connect::Exec(command))
}

fn launched(command: &[String]) -> Vec<String> {
    let mut expected = words(&["/landgate/landgate", "exec", "--"]);
    expected.extend_from_slice(command);
    expected
}

#[rstest]
#[case::bare_name(&["sh"])]
#[case::absolute_path(&["/bin/sh"])]
#[case::through_env(&["env", "sh"])]
#[case::relative(&["./x"])]
#[case::shell_string(&["sh", "-c", "cat /etc/passwd > /tmp/x; ls -la"])]
#[case::kubectl_cp(&["tar", "cf", "-", "/data"])]
#[case::not_a_wrapper(&["java", "-jar", "/app.jar"])]
#[case::the_launchers_other_commands(&["/landgate/landgate", "install", "/tmp/x"])]
#[case::launcher_without_separator(&["/landgate/landgate", "exec", "sh"])]
fn every_exec_runs_through_the_launcher(#[case] command: &[&str]) {
    let command = words(command);
    assert_eq!(
        exec_in(&wrapped_pod(&[]), &[], Some("app"), &command),
        ExecDecision::Rewrite(launched(&command))
    );
}

#[test]
fn a_long_argv_is_rewritten_whole() {
    let command: Vec<String> = (0..10_000).map(|i| format!("arg{i}")).collect();
    let ExecDecision::Rewrite(rewritten) = exec_in(&wrapped_pod(&[]), &[], Some("app"), &command)
    else {
        panic!("not rewritten");
    };
    assert_eq!(rewritten.len(), 10_003);
    assert_eq!(&rewritten[3..], command.as_slice());
}

#[test]
fn a_command_already_through_the_launcher_is_left_alone() {
    let command = words(&["/landgate/landgate", "exec", "--", "sh"]);
    assert!(matches!(
        exec_in(&wrapped_pod(&[]), &[], Some("app"), &command),
        ExecDecision::Pass(_)
    ));
}

#[test]
fn an_empty_command_is_refused() {
    assert!(matches!(
        exec_in(&wrapped_pod(&[]), &[], Some("app"), &[]),
        ExecDecision::Refuse(_)
    ));
}

#[test]
fn deny_refuses_exec_and_attach_naming_where_it_came_from() {
    for (pod, namespace, origin) in [
        (
            vec![(EXEC, "deny")],
            vec![],
            "pod annotation landgate.dev/exec",
        ),
        (
            vec![],
            vec![(EXEC, "deny")],
            "annotation landgate.dev/exec on namespace shop",
        ),
        // The namespace tightened after the pod was created: it wins.
        (
            vec![(EXEC, "allow")],
            vec![(EXEC, "deny")],
            "on namespace shop",
        ),
    ] {
        let annotations = wrapped_pod(&pod);
        let ExecDecision::Refuse(message) =
            exec_in(&annotations, &namespace, Some("app"), &words(&["sh"]))
        else {
            panic!("exec not refused under {pod:?} {namespace:?}");
        };
        assert!(message.contains(origin), "{message}");
        let ns: BTreeMap<String, String> = namespace
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let attach = decide_exec(&annotations, "shop", &ns, Some("app"), Connect::Attach);
        assert!(matches!(attach, ExecDecision::Refuse(_)), "{attach:?}");
    }
}

#[test]
fn allow_from_the_namespace_admits_unchanged_and_says_so() {
    let decision = exec_in(
        &wrapped_pod(&[]),
        &[(EXEC, "allow")],
        Some("app"),
        &words(&["sh"]),
    );
    assert!(
        matches!(&decision, ExecDecision::Allowed(why) if why.contains("annotation landgate.dev/exec on namespace shop")),
        "{decision:?}"
    );
}

/// Only the namespace grants `allow`: a pod's own `allow` (set when the
/// namespace said nothing, or added later) is still sandboxed (security
/// review: a pod gave itself unsandboxed exec).
#[test]
fn a_pods_own_allow_is_still_sandboxed() {
    let command = words(&["sh"]);
    assert_eq!(
        exec_in(&wrapped_pod(&[(EXEC, "allow")]), &[], Some("app"), &command),
        ExecDecision::Rewrite(launched(&command))
    );
}

#[test]
fn attach_to_a_wrapped_container_is_admitted() {
    let decision = decide_exec(
        &wrapped_pod(&[]),
        "shop",
        &BTreeMap::new(),
        Some("side"),
        Connect::Attach,
    );
    assert!(matches!(decision, ExecDecision::Pass(_)), "{decision:?}");
}

/// `kubectl debug` adds an ephemeral container landgate did not wrap:
/// exec or attach there would run outside the sandbox.
#[test]
fn an_unwrapped_container_of_a_wrapped_pod_is_refused() {
    let annotations = wrapped_pod(&[]);
    let ExecDecision::Refuse(message) =
        exec_in(&annotations, &[], Some("debugger-x1"), &words(&["sh"]))
    else {
        panic!("not refused");
    };
    assert!(message.contains("\"debugger-x1\""), "{message}");
    assert!(message.contains("app, side"), "{message}");
    let attach = decide_exec(
        &annotations,
        "shop",
        &BTreeMap::new(),
        Some("debugger-x1"),
        Connect::Attach,
    );
    assert!(matches!(attach, ExecDecision::Refuse(_)), "{attach:?}");
}

#[test]
fn a_request_naming_no_container_is_refused() {
    assert!(matches!(
        exec_in(&wrapped_pod(&[]), &[], None, &words(&["sh"])),
        ExecDecision::Refuse(_)
    ));
}

#[test]
fn a_pod_landgate_did_not_wrap_is_left_alone() {
    for annotations in [
        json!({}),
        json!({STATUS: "{\"version\":1,\"skipped\":\"opted out\"}"}),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}
        }))
        .unwrap();
        assert!(matches!(
            exec_in(&pod, &[(EXEC, "deny")], Some("app"), &words(&["sh"])),
            ExecDecision::Pass(_)
        ));
    }
}

/// The status annotation can be removed through `pods/status`, which no
/// webhook sees: the pod's spec still says it is wrapped (security review).
#[test]
fn a_wrapped_pod_without_its_status_is_still_sandboxed() {
    let mut pod = wrapped_pod(&[]);
    pod.metadata.annotations = None;
    let command = words(&["/bin/sh"]);
    assert_eq!(
        exec_in(&pod, &[], Some("side"), &command),
        ExecDecision::Rewrite(launched(&command))
    );
}

#[test]
fn an_invalid_exec_value_is_refused_naming_it() {
    let ExecDecision::Refuse(message) = exec_in(
        &wrapped_pod(&[]),
        &[(EXEC, "sometimes")],
        Some("app"),
        &words(&["sh"]),
    ) else {
        panic!("not refused");
    };
    assert!(message.contains("\"sometimes\""), "{message}");
}

/// At creation, a pod may tighten its namespace's exec, never loosen it.
#[rstest]
#[case::loosen("allow", "sandboxed", false)]
#[case::loosen_deny("sandboxed", "deny", false)]
#[case::allow_without_a_namespace_value("allow", "", false)]
#[case::tighten("deny", "sandboxed", true)]
#[case::same("sandboxed", "sandboxed", true)]
fn exec_is_a_namespace_floor_at_creation(
    #[case] pod_value: &str,
    #[case] namespace_value: &str,
    #[case] admitted: bool,
) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {EXEC: pod_value}},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36", "command": ["sh"]}]}
    }))
    .unwrap();
    // "" stands for no namespace annotation at all.
    let namespace: BTreeMap<String, String> = [(EXEC.to_owned(), namespace_value.to_owned())]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let result = mutate_pod(
        &Settings::default(),
        PodContext {
            namespace: "shop",
            namespace_annotations: &namespace,
            images: NO_IMAGES,
        },
        &pod,
    );
    match (result, admitted) {
        (Ok(_), true) => {}
        (Err(err), false) => {
            let message = err.to_string();
            assert!(message.contains("landgate.dev/exec"), "{message}");
            assert!(message.contains("allow < sandboxed < deny"), "{message}");
        }
        (other, _) => panic!("{pod_value} under {namespace_value}: {other:?}"),
    }
}
