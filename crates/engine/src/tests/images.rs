//! Containers whose image was resolved: Kubernetes' command/args rules, the
//! image's PATH and WorkingDir, digest pinning, and the failures.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use landgate_policy::{argv, env};
use serde_json::{Value, json};

use super::Run;
use crate::image::{ImageConfig, ImageLookup, Images, LookupFailure};
use crate::mutate::*;
use crate::settings::{Settings, UnknownEntrypoint};

const IMAGE: &str = "registry.example:5000/shop/app:1.0";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const IMAGE_PATH: &str = "/opt/java/openjdk/bin:/usr/local/bin:/usr/bin:/bin";

fn config() -> ImageConfig {
    ImageConfig {
        digest: DIGEST.to_owned(),
        entrypoint: vec!["/docker-entrypoint.sh".into()],
        cmd: vec!["java".into(), "-jar".into(), "/app.jar".into()],
        path: Some(IMAGE_PATH.to_owned()),
        working_dir: Some("/srv/app".into()),
        user: Some("1000".into()),
        platform_disagreement: None,
    }
}

fn resolved(config: ImageConfig) -> Images {
    BTreeMap::from([(IMAGE.to_owned(), ImageLookup::Resolved(Arc::new(config)))])
}

fn pod(container: Value, annotations: Value) -> Pod {
    let mut c = json!({"name": "app", "image": IMAGE});
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, container) {
        c.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [c]}
    }))
    .unwrap()
}

fn mutate(settings: &Settings, images: &Images, p: &Pod) -> Result<Mutation, MutateError> {
    let no_annotations = BTreeMap::new();
    mutate_pod(
        settings,
        PodContext {
            namespace: "shop",
            namespace_annotations: &no_annotations,
            images,
        },
        p,
    )
}

fn run(images: &Images, p: &Pod) -> Run {
    let m = mutate(&Settings::default(), images, p).unwrap_or_else(|e| panic!("{e}"));
    Run::of(p, m)
}

fn app(r: &Run) -> Value {
    serde_json::to_value(&r.pod.spec.as_ref().unwrap().containers[0]).unwrap()
}

fn env_of(c: &Value, name: &str) -> Option<String> {
    c["env"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_owned)
}

fn exec(command: &[&str]) -> Value {
    json!(argv::exec(
        &command.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    ))
}

#[test]
fn neither_command_nor_args_runs_entrypoint_and_cmd_through_the_launcher() {
    let r = run(&resolved(config()), &pod(json!({}), json!({})));
    assert_eq!(r.outcome, Outcome::Wrapped);
    let c = app(&r);
    assert_eq!(c["command"], exec(&["/docker-entrypoint.sh"]));
    assert_eq!(c["args"], json!(["java", "-jar", "/app.jar"]));
    assert_eq!(c["image"], json!(format!("{IMAGE}@{DIGEST}")));
    assert_eq!(c["workingDir"], json!("/srv/app"));
    assert_eq!(
        env_of(&c, "PATH").as_deref(),
        Some(format!("/landgate/bin:{IMAGE_PATH}").as_str())
    );
    // Resolved: no PATH guess, nothing to warn about.
    assert_eq!(r.warnings, Vec::<String>::new());
    // The image's WorkingDir is the container's: writable under baseline.
    let fs = r.policies["app"].fs.as_ref().unwrap();
    assert!(fs.rw.iter().any(|p| p.to_string() == "/srv/app"), "{fs:?}");
}

#[test]
fn args_replace_cmd() {
    let r = run(
        &resolved(config()),
        &pod(json!({"args": ["--port", "9"]}), json!({})),
    );
    let c = app(&r);
    assert_eq!(c["command"], exec(&["/docker-entrypoint.sh"]));
    assert_eq!(c["args"], json!(["--port", "9"]));
}

#[test]
fn command_replaces_entrypoint_and_drops_cmd() {
    let r = run(
        &resolved(config()),
        &pod(json!({"command": ["/bin/server"]}), json!({})),
    );
    let c = app(&r);
    assert_eq!(c["command"], exec(&["/bin/server"]));
    assert_eq!(c.get("args"), None);
    // It still runs the image that was looked up, with the image's PATH.
    assert_eq!(c["image"], json!(format!("{IMAGE}@{DIGEST}")));
    assert_eq!(
        env_of(&c, "PATH").as_deref(),
        Some(format!("/landgate/bin:{IMAGE_PATH}").as_str())
    );
}

#[test]
fn cmd_only_image_runs_cmd_through_the_launcher() {
    let only_cmd = ImageConfig {
        entrypoint: Vec::new(),
        ..config()
    };
    let r = run(&resolved(only_cmd), &pod(json!({}), json!({})));
    let c = app(&r);
    // Whole in `command`: `exec --` alone would read back as no command.
    assert_eq!(c["command"], exec(&["java", "-jar", "/app.jar"]));
    assert_eq!(c.get("args"), None);
}

/// Review finding: a Cmd-only image (alpine, python, golang…) was wrapped
/// as `exec --` + args, which a second pass (any later mutating webhook
/// triggers one) refused as tampered.
#[test]
fn cmd_only_and_args_only_pods_survive_reinvocation() {
    let only_cmd = ImageConfig {
        entrypoint: Vec::new(),
        ..config()
    };
    for container in [json!({}), json!({"args": ["/app/run", "x"]})] {
        let p = pod(container.clone(), json!({}));
        let first = run(&resolved(only_cmd.clone()), &p);
        assert_eq!(first.outcome, Outcome::Wrapped);
        if container.get("args").is_some() {
            assert_eq!(app(&first)["command"], exec(&["/app/run", "x"]));
            assert_eq!(app(&first).get("args"), None);
        }
        let pinned = format!("{IMAGE}@{DIGEST}");
        let again = BTreeMap::from([(pinned, ImageLookup::Resolved(Arc::new(only_cmd.clone())))]);
        for images in [&again, NO_IMAGES] {
            let second = run(images, &first.pod);
            assert_eq!(second.outcome, Outcome::AlreadyWrapped, "{container}");
        }
    }
}

/// Review finding: the kubelet expands `$(VAR)` and `$$` in the spec's
/// command and args, never in the image's: values copied from the image
/// are written escaped, so what runs is what the image says.
#[test]
fn image_values_are_not_expanded_by_the_kubelet() {
    let dollars = ImageConfig {
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["echo $$; exec /app/$(MODE)".into()],
        ..config()
    };
    let r = run(&resolved(dollars), &pod(json!({}), json!({})));
    let c = app(&r);
    assert_eq!(c["command"], exec(&["/bin/sh", "-c"]));
    assert_eq!(c["args"], json!(["echo $$$$; exec /app/$$(MODE)"]));
    // The pod's own args stay the pod's: the kubelet expands those.
    let r = run(
        &resolved(ImageConfig {
            entrypoint: Vec::new(),
            ..config()
        }),
        &pod(json!({"args": ["$(MODE)"]}), json!({})),
    );
    assert_eq!(app(&r)["command"], exec(&["$(MODE)"]));
}

/// containerd runs `ENTRYPOINT [""]` as no Entrypoint.
#[test]
fn an_empty_string_entrypoint_is_no_entrypoint() {
    let blank = ImageConfig {
        entrypoint: vec![String::new()],
        ..config()
    };
    let r = run(&resolved(blank), &pod(json!({}), json!({})));
    assert_eq!(app(&r)["command"], exec(&["java", "-jar", "/app.jar"]));
}

#[test]
fn entrypoint_only_image_sets_no_args() {
    let only_entrypoint = ImageConfig {
        cmd: Vec::new(),
        ..config()
    };
    let r = run(&resolved(only_entrypoint), &pod(json!({}), json!({})));
    let c = app(&r);
    assert_eq!(c["command"], exec(&["/docker-entrypoint.sh"]));
    assert_eq!(c.get("args"), None);
}

#[test]
fn an_image_with_nothing_to_run_is_refused() {
    let empty = ImageConfig {
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        ..config()
    };
    let err = mutate(
        &Settings::default(),
        &resolved(empty),
        &pod(json!({}), json!({})),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("has neither Entrypoint nor Cmd"), "{err}");
    assert!(err.contains("spec.containers[0].command"), "{err}");
}

#[test]
fn the_spec_working_dir_wins() {
    let r = run(
        &resolved(config()),
        &pod(json!({"workingDir": "/data"}), json!({})),
    );
    assert_eq!(app(&r)["workingDir"], json!("/data"));
}

#[test]
fn an_image_without_path_gets_the_runtime_default_without_a_warning() {
    let no_path = ImageConfig {
        path: None,
        ..config()
    };
    let r = run(&resolved(no_path), &pod(json!({}), json!({})));
    assert_eq!(
        env_of(&app(&r), "PATH").as_deref(),
        Some(format!("/landgate/bin:{}", env::DEFAULT_PATH).as_str())
    );
    assert_eq!(r.warnings, Vec::<String>::new());
}

#[test]
fn a_digest_pinned_image_is_never_rewritten() {
    let pinned = format!("{IMAGE}@{DIGEST}");
    let images = BTreeMap::from([(pinned.clone(), ImageLookup::Resolved(Arc::new(config())))]);
    let r = run(&images, &pod(json!({"image": pinned}), json!({})));
    assert_eq!(app(&r)["image"], json!(pinned));
    assert!(
        !r.patch
            .0
            .iter()
            .any(|op| op.path().as_str().ends_with("/image")),
        "{:?}",
        r.patch
    );
}

#[test]
fn unpinned_tags_are_said_to_move() {
    let settings = Settings {
        pin_digests: false,
        ..Settings::default()
    };
    let p = pod(json!({}), json!({}));
    let r = Run::of(&p, mutate(&settings, &resolved(config()), &p).unwrap());
    assert_eq!(app(&r)["image"], json!(IMAGE));
    assert!(
        r.warnings.iter().any(|w| w.contains("the tag may move")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_second_pass_changes_nothing_with_or_without_the_registry() {
    let images = resolved(config());
    let p = pod(json!({}), json!({}));
    let first = run(&images, &p);
    let pinned = format!("{IMAGE}@{DIGEST}");
    let again = BTreeMap::from([(pinned, ImageLookup::Resolved(Arc::new(config())))]);
    for images in [&again, NO_IMAGES] {
        let second = run(images, &first.pod);
        assert_eq!(
            second.outcome,
            Outcome::AlreadyWrapped,
            "{:?}",
            second.patch
        );
        assert_eq!(second.patch.0, Vec::new());
    }
}

fn failed() -> Images {
    BTreeMap::from([(
        IMAGE.to_owned(),
        ImageLookup::Failed {
            cause: LookupFailure::Timeout,
            message: "no answer from registry.example:5000 within 2s".into(),
        },
    )])
}

#[test]
fn a_failed_lookup_admits_unwrapped_naming_the_cause() {
    let r = run(&failed(), &pod(json!({}), json!({})));
    assert!(matches!(r.outcome, Outcome::Skipped(_)), "{:?}", r.outcome);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("could not be looked up: timeout: no answer")),
        "{:?}",
        r.warnings
    );
    // Never a guessed entrypoint.
    assert_eq!(app(&r).get("command"), None);
}

#[test]
fn a_failed_lookup_is_refused_under_reject_naming_image_and_cause() {
    let settings = Settings {
        unknown_entrypoint: UnknownEntrypoint::Reject,
        ..Settings::default()
    };
    let err = mutate(&settings, &failed(), &pod(json!({}), json!({})))
        .unwrap_err()
        .to_string();
    assert!(err.contains(IMAGE), "{err}");
    assert!(err.contains("timeout: no answer"), "{err}");
}

#[test]
fn a_failed_lookup_keeps_the_default_path_for_containers_with_command() {
    let r = run(
        &failed(),
        &pod(json!({"command": ["/bin/server"]}), json!({})),
    );
    assert_eq!(r.outcome, Outcome::Wrapped);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("replacing the image's own PATH")),
        "{:?}",
        r.warnings
    );
    assert_eq!(app(&r)["image"], json!(IMAGE));
}

#[test]
fn disagreeing_platforms_warn_and_are_refused_under_required() {
    let split = ImageConfig {
        platform_disagreement: Some("linux/arm64 has Entrypoint [\"/arm\"]".into()),
        ..config()
    };
    let r = run(&resolved(split.clone()), &pod(json!({}), json!({})));
    assert!(
        r.warnings.iter().any(|w| w.contains("disagree")),
        "{:?}",
        r.warnings
    );
    let required = pod(json!({}), json!({"landgate.dev/enforcement": "required"}));
    let err = mutate(&Settings::default(), &resolved(split), &required)
        .unwrap_err()
        .to_string();
    assert!(err.contains("linux/arm64"), "{err}");
    assert!(err.contains("= required"), "{err}");
}

#[test]
fn strict_reads_the_resolved_entrypoint() {
    let p = pod(json!({}), json!({"landgate.dev/profile": "strict"}));
    let r = run(&resolved(config()), &p);
    let fs = r.policies["app"].fs.as_ref().unwrap();
    assert!(
        fs.rx
            .iter()
            .any(|p| p.to_string() == "/docker-entrypoint.sh"),
        "{fs:?}"
    );
}

/// Validation of a pod wrapped from its resolved image needs no registry:
/// everything the image gave is written into the pod (command, args, PATH,
/// workingDir, the pin), so a replica whose cache is cold and whose
/// registry is down admits it all the same.
#[test]
fn validation_of_a_resolved_pod_needs_no_registry() {
    let p = pod(json!({}), json!({}));
    let images = resolved(config());
    let stored = run(&images, &p).pod;
    let annotations = BTreeMap::new();
    let context = |images| PodContext {
        namespace: "shop",
        namespace_annotations: &annotations,
        images,
    };
    for images in [&images, NO_IMAGES] {
        assert_eq!(
            crate::validate::validate_pod(&Settings::default(), context(images), &stored),
            Outcome::AlreadyWrapped
        );
    }
}
