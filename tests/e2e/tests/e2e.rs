//! landgate against a real kube-apiserver (issue 5).
//!
//! One control plane and one landgate-webhook serve every test of this
//! binary; each test works in its own namespace. Run with
//! `cargo test -p landgate-e2e --test e2e -- --test-threads=1` after
//! `bash tests/e2e/build-control-plane.sh` and `cargo build -p landgate-webhook`
//! (`just e2e` does all three). On failure the state directory with every
//! component's log is kept and its path printed.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use landgate_e2e::appender::{APPENDED, Appender, appended_command};
use landgate_e2e::cluster::ControlPlane;
use landgate_e2e::pki::WebhookPki;
use landgate_e2e::pods::{self, INJECT_LABEL, check_untouched, check_wrapped};
use landgate_e2e::registry::{ImageSpec, TestRegistry};
use landgate_e2e::webhook::{
    self, WebhookProcess, landgate_configuration, landgate_validating_configuration, wait_until,
};
use serde_json::json;

/// A test-only mutating webhook `webhook` at `url`, called for pod CREATEs
/// in namespaces labelled `label`, once (reinvocationPolicy Never).
fn test_webhook(
    name: &str,
    webhook: &str,
    url: &str,
    label: (&str, &str),
    ca_pem: &[u8],
) -> anyhow::Result<MutatingWebhookConfiguration> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": webhook,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "timeoutSeconds": 5,
            "namespaceSelector": {"matchLabels": {label.0: label.1}},
            "clientConfig": {"url": url, "caBundle": k8s_openapi::ByteString(ca_pem.to_vec())},
            "rules": [{
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }],
        }],
    }))?)
}

/// Name of the main configuration (sorts before the appender's, so that the
/// API server calls landgate first).
const LANDGATE_CONFIGURATION: &str = "landgate";

struct Env {
    cluster: ControlPlane,
    client: kube::Client,
    pki: WebhookPki,
    /// The main webhook (kept running for the whole binary).
    webhook: WebhookProcess,
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime for the e2e tests")
});

static ENV: OnceLock<Result<Env, String>> = OnceLock::new();

fn env() -> &'static Env {
    let env = ENV.get_or_init(|| {
        let started = Instant::now();
        let env = RUNTIME
            .block_on(set_up())
            .map_err(|err| landgate_e2e::describe(&err));
        eprintln!("e2e: set-up took {:.1}s", started.elapsed().as_secs_f64());
        env
    });
    match env {
        Ok(env) => env,
        Err(message) => panic!("e2e set-up failed: {message}"),
    }
}

async fn set_up() -> anyhow::Result<Env> {
    landgate_e2e::install_crypto_provider();
    // Before the cluster: a missing binary is the cheapest failure.
    let binary = webhook::webhook_binary().await?;
    eprintln!("e2e: webhook binary {}", binary.display());
    let cluster = ControlPlane::up().await?;
    eprintln!(
        "e2e: control plane at {}, state and logs in {}",
        cluster.apiserver_url,
        cluster.dir.display()
    );
    // From now on a panicking test keeps the logs and says where they are.
    let dir = cluster.dir.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = std::fs::write(dir.join("failed"), b"a test failed\n");
        default_hook(info);
        eprintln!("e2e: logs kept in {}", dir.join("logs").display());
    }));
    match start_landgate(&cluster).await {
        Ok((client, pki, webhook)) => Ok(Env {
            cluster,
            client,
            pki,
            webhook,
        }),
        Err(err) => {
            cluster.mark_failed();
            Err(err.context(format!("logs kept in {}", cluster.logs().display())))
        }
    }
}

/// Starts the main landgate-webhook, registers its configuration and waits
/// until the API server calls it.
async fn start_landgate(
    cluster: &ControlPlane,
) -> anyhow::Result<(kube::Client, WebhookPki, WebhookProcess)> {
    let client = cluster.client().await?;
    let pki = WebhookPki::create(&cluster.dir.join("webhook-pki")).await?;
    // The scenarios' images (busybox, nginx) name Docker Hub, which the
    // suite never reaches: the main instance does not look images up (the
    // resolving instance of the image scenario does, from a local registry).
    let webhook =
        WebhookProcess::start(cluster, "landgate-webhook", &pki, &["--no-resolve"]).await?;
    eprintln!(
        "e2e: landgate-webhook serving on 127.0.0.1:{}; configuration from {}",
        webhook.port,
        webhook::configuration_source()
    );
    let configuration = landgate_configuration(
        LANDGATE_CONFIGURATION,
        &webhook.mutate_url(),
        &pki.ca_pem()?,
    )?;
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &configuration)
        .await
        .context("registering the landgate MutatingWebhookConfiguration")?;
    let validating = landgate_validating_configuration(
        LANDGATE_CONFIGURATION,
        &webhook.validate_url(),
        &pki.ca_pem()?,
    )?;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating)
        .await
        .context("registering the landgate ValidatingWebhookConfiguration")?;
    let probe = cluster
        .namespace(&client, "e2e-probe", &[INJECT_LABEL])
        .await?;
    wait_until_called(&client, &probe).await?;
    wait_until_validating(&client, &probe).await?;
    Ok((client, pki, webhook))
}

/// Dry-run creates of a pod with the opt-out label until landgate's
/// validating webhook refuses it: the label skips the mutating webhook
/// (objectSelector), and `namespace` does not allow opt-outs.
async fn wait_until_validating(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut probe = pods::simple_pod("validation-probe");
    probe.metadata.labels = Some([(INJECT_LABEL.0.to_owned(), "false".to_owned())].into());
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    wait_until(
        &format!("the API server to call landgate's validating webhook in {namespace}"),
        || async {
            match api.create(&dry_run, &probe).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(status))
                    if status
                        .message
                        .contains(".landgate.dev\" denied the request") =>
                {
                    Ok(Some(()))
                }
                Err(err) => Err(err.into()),
            }
        },
    )
    .await
}

/// Dry-run creates of a probe pod until the API server calls landgate: the
/// pod comes back wrapped, or landgate's own denial comes back. Whether
/// landgate's answer is right is for the scenarios to judge, each on its own.
async fn wait_until_called(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let probe = pods::simple_pod("probe");
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    wait_until(
        &format!("the API server to call landgate for a pod in {namespace}"),
        || async {
            match api.create(&dry_run, &probe).await {
                Ok(shown) => {
                    check_wrapped(&probe, &shown)?;
                    Ok(Some(()))
                }
                Err(kube::Error::Api(status))
                    if status
                        .message
                        .contains("admission webhook \"pods.landgate.dev\" denied") =>
                {
                    eprintln!(
                        "e2e: note: landgate refused the set-up probe pod: {}",
                        status.message
                    );
                    Ok(Some(()))
                }
                Err(err) => Err(err.into()),
            }
        },
    )
    .await
}

impl Env {
    async fn namespace(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<String> {
        self.cluster.namespace(&self.client, name, labels).await
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn kubectl(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        self.cluster.kubectl(args).await
    }

    /// Re-registers the main configuration with another caBundle.
    async fn set_landgate_ca_bundle(&self, bundle: Vec<u8>) -> anyhow::Result<()> {
        let api = Api::<MutatingWebhookConfiguration>::all(self.client.clone());
        let mut configuration = api.get(LANDGATE_CONFIGURATION).await?;
        for hook in configuration.webhooks.iter_mut().flatten() {
            hook.client_config.ca_bundle = Some(k8s_openapi::ByteString(bundle.clone()));
        }
        api.replace(
            LANDGATE_CONFIGURATION,
            &PostParams::default(),
            &configuration,
        )
        .await
        .context("updating the landgate caBundle")?;
        Ok(())
    }

    /// Writes `pod` as YAML into the state directory, for kubectl -f.
    fn manifest(&self, pod: &Pod) -> anyhow::Result<String> {
        let name = pod.metadata.name.as_deref().unwrap_or("pod");
        let path = self.cluster.dir.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml_ng::to_string(pod)?)?;
        Ok(path.to_string_lossy().into_owned())
    }
}

/// Runs one scenario on the shared runtime; an error keeps the logs and
/// fails the test with the state directory in the message.
fn run<F, Fut>(scenario: F)
where
    F: FnOnce(&'static Env) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let env = env();
    let started = Instant::now();
    let result = RUNTIME.block_on(scenario(env));
    eprintln!("e2e: scenario took {:.1}s", started.elapsed().as_secs_f64());
    if let Err(err) = result {
        env.cluster.mark_failed();
        panic!(
            "{}\n(state and logs kept in {})",
            landgate_e2e::describe(&err),
            env.cluster.dir.display()
        );
    }
}

/// Dry-run creates of a probe pod until it comes back wrapped: the API
/// server's webhook configuration cache is eventually consistent.
async fn wait_until_wrapped(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let probe = pods::simple_pod("probe");
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    wait_until(&format!("a wrapped dry-run pod in {namespace}"), || async {
        let stored = api.create(&dry_run, &probe).await?;
        Ok(check_wrapped(&probe, &stored).ok())
    })
    .await
}

async fn create(api: &Api<Pod>, pod: &Pod) -> anyhow::Result<Pod> {
    let name = pod.metadata.name.as_deref().unwrap_or("<generated>");
    api.create(&PostParams::default(), pod)
        .await
        .with_context(|| format!("creating pod {name}"))
}

// === scenarios ===

#[test]
fn pod_in_labelled_namespace_is_stored_mutated() {
    run(|env| async move {
        let namespace = env.namespace("e2e-pod", &[INJECT_LABEL]).await?;
        let api = env.pods(&namespace);
        let pod = pods::sample_pod("sample");
        create(&api, &pod).await?;
        // Read it back: what etcd holds, after the API server validated it.
        let stored = api.get("sample").await?;
        check_wrapped(&pod, &stored)?;
        // What `kubectl get pods -L landgate.dev/profile` shows.
        let output = env
            .kubectl(&[
                "-n",
                &namespace,
                "get",
                "pods",
                "-L",
                PROFILE_LABEL,
                "--no-headers",
            ])
            .await?;
        let shown = String::from_utf8_lossy(&output.stdout);
        ensure!(
            shown.contains("sample") && shown.trim_end().ends_with("baseline"),
            "kubectl get pods -L {PROFILE_LABEL} does not show the profile: {shown}"
        );
        Ok(())
    });
}

/// The label landgate writes on every pod it judged (declared here, not
/// imported: the oracle does not share the implementation's constants).
const PROFILE_LABEL: &str = "landgate.dev/profile";

/// Waits for a landgate Event in `namespace` with `reason` whose note
/// contains `needle`; returns it.
async fn landgate_event(
    client: &kube::Client,
    namespace: &str,
    reason: &str,
    needle: &str,
) -> anyhow::Result<k8s_openapi::api::events::v1::Event> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), namespace);
    landgate_e2e::eventually(
        &format!("a landgate Event {reason} mentioning {needle:?} in {namespace}"),
        Duration::from_secs(30),
        || async {
            let list = events.list(&ListParams::default()).await?;
            Ok(list.items.into_iter().find(|e| {
                e.reporting_controller.as_deref() == Some("landgate")
                    && e.reason.as_deref() == Some(reason)
                    && e.note.as_deref().is_some_and(|n| n.contains(needle))
            }))
        },
    )
    .await
}

#[test]
fn deployment_pods_created_by_controller_manager_are_mutated() {
    run(|env| async move {
        let namespace = env.namespace("e2e-deployment", &[INJECT_LABEL]).await?;
        let template = pods::sample_pod("web");
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": template.metadata, "spec": template.spec},
            },
        }))?;
        Api::<Deployment>::namespaced(env.client.clone(), &namespace)
            .create(&PostParams::default(), &deployment)
            .await?;
        let api = env.pods(&namespace);
        let created = landgate_e2e::eventually(
            "kube-controller-manager to create 2 pods for Deployment web",
            Duration::from_secs(60),
            || async {
                let list = api.list(&ListParams::default().labels("app=web")).await?;
                if list.items.len() >= 2 {
                    return Ok(Some(list.items));
                }
                // A refused create shows up as the ReplicaSet's condition.
                let sets = Api::<ReplicaSet>::namespaced(env.client.clone(), &namespace)
                    .list(&ListParams::default())
                    .await?;
                let refusals: Vec<String> = sets
                    .items
                    .iter()
                    .flat_map(|rs| {
                        let name = rs.metadata.name.clone().unwrap_or_default();
                        rs.status
                            .iter()
                            .flat_map(|s| s.conditions.iter().flatten())
                            .filter(|c| c.type_ == "ReplicaFailure")
                            .map(move |c| {
                                format!("ReplicaSet {name}: {}", c.message.as_deref().unwrap_or(""))
                            })
                    })
                    .collect();
                if refusals.is_empty() {
                    Ok(None)
                } else {
                    bail!("{}", refusals.join("; "))
                }
            },
        )
        .await?;
        for pod in &created {
            ensure!(
                pod.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "ReplicaSet"),
                "pod {:?} is not owned by a ReplicaSet",
                pod.metadata.name
            );
            check_wrapped(&template, pod)?;
        }
        Ok(())
    });
}

#[test]
fn pod_in_unlabelled_namespace_is_stored_unchanged() {
    run(|env| async move {
        let namespace = env.namespace("e2e-unlabelled", &[]).await?;
        let api = env.pods(&namespace);
        let pod = pods::sample_pod("plain");
        create(&api, &pod).await?;
        let stored = api.get("plain").await?;
        check_untouched(&pod, &stored)?;
        // Not even a skip record: the namespaceSelector kept landgate out.
        ensure!(
            stored
                .metadata
                .annotations
                .is_none_or(|a| !a.contains_key(pods::STATUS_ANNOTATION)),
            "landgate was called for a pod in an unlabelled namespace"
        );
        Ok(())
    });
}

#[test]
fn opted_out_pod_is_stored_unchanged() {
    run(|env| async move {
        let namespace = env.namespace("e2e-opt-out", &[INJECT_LABEL]).await?;
        let api = env.pods(&namespace);
        let mut pod = pods::sample_pod("opted-out");
        annotate(&mut pod, pods::OPT_OUT_ANNOTATION, "false");
        // The label opts out too: it skips the mutating webhook
        // (objectSelector), and the validating one judges it.
        let mut labelled = pods::sample_pod("opted-out-by-label");
        labelled.metadata.labels = Some([(INJECT_LABEL.0.to_owned(), "false".to_owned())].into());
        // Refused until the namespace allows opting out.
        let refusal = refusal_of(api.create(&DRY_RUN, &pod).await)?;
        ensure!(
            refusal.contains("landgate.dev/allow-opt-out"),
            "the refusal does not name the namespace annotation: {refusal}"
        );
        let refusal = refusal_of(api.create(&DRY_RUN, &labelled).await)?;
        ensure!(
            refusal.contains("pods.validate.landgate.dev")
                && refusal.contains("pod label landgate.dev/inject")
                && refusal.contains("landgate.dev/allow-opt-out"),
            "the validating webhook's refusal does not name the label and the namespace annotation: {refusal}"
        );
        // Allowed once it does, without restarting the webhook.
        annotate_namespace(
            &env.client,
            &namespace,
            json!({"landgate.dev/allow-opt-out": "true"}),
        )
        .await?;
        wait_until("the webhook to see landgate.dev/allow-opt-out", || async {
            Ok(api.create(&DRY_RUN, &pod).await.ok().map(|_| ()))
        })
        .await?;
        create(&api, &pod).await?;
        check_untouched(&pod, &api.get("opted-out").await?)?;
        create(&api, &labelled).await?;
        check_untouched(&labelled, &api.get("opted-out-by-label").await?)?;
        // Told to whoever looks: the pod's label, and an Event on its
        // namespace (a bare pod has no controller).
        let stored = api.get("opted-out").await?;
        let label = stored
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(PROFILE_LABEL));
        ensure!(
            label.map(String::as_str) == Some("none"),
            "an opted-out pod is labelled {PROFILE_LABEL}={label:?}, not none"
        );
        let event = landgate_event(&env.client, &namespace, "NotSandboxed", "opted-out").await?;
        let regarding = event.regarding.unwrap_or_default();
        ensure!(
            regarding.kind.as_deref() == Some("Namespace")
                && regarding.name.as_deref() == Some(namespace.as_str()),
            "the Event is not on the namespace: {regarding:?}"
        );
        Ok(())
    });
}

#[test]
fn namespace_annotations_are_floors_a_pod_cannot_lower() {
    run(|env| async move {
        let namespace = env.namespace("e2e-floors", &[INJECT_LABEL]).await?;
        let api = env.pods(&namespace);
        let mut pod = pods::simple_pod("best-effort");
        annotate(&mut pod, "landgate.dev/enforcement", "best-effort");
        // Before the namespace says anything, the pod's choice stands.
        create(&api, &pod).await?;
        // The namespace now demands `required`: the next such pod is refused,
        // naming both annotations (seen without restarting the webhook).
        annotate_namespace(
            &env.client,
            &namespace,
            json!({"landgate.dev/enforcement": "required"}),
        )
        .await?;
        pod.metadata.name = Some("lowered".into());
        let refusal = landgate_e2e::eventually(
            "the webhook to see the namespace's landgate.dev/enforcement",
            Duration::from_secs(20),
            || async {
                Ok(match api.create(&DRY_RUN, &pod).await {
                    Ok(_) => None,
                    Err(err) => Some(refusal_of(Err(err))?),
                })
            },
        )
        .await?;
        ensure!(
            refusal.contains("landgate.dev/enforcement") && refusal.contains("required"),
            "the refusal does not name the annotations and the value that wins: {refusal}"
        );
        ensure!(
            api.get_opt("lowered").await?.is_none(),
            "refused pod stored"
        );
        // Raising is allowed.
        let mut raised = pods::simple_pod("raised");
        annotate(&mut raised, "landgate.dev/profile", "strict");
        let stored = create(&api, &raised).await?;
        check_wrapped(&raised, &stored)
    });
}

/// Sets one annotation on `pod`.
fn annotate(pod: &mut Pod, key: &str, value: &str) {
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value.to_owned());
}

/// A dry-run create: admission runs, nothing is stored.
const DRY_RUN: PostParams = PostParams {
    dry_run: true,
    field_manager: None,
};

/// Merges `annotations` into namespace `name`'s.
async fn annotate_namespace(
    client: &kube::Client,
    name: &str,
    annotations: serde_json::Value,
) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .with_context(|| format!("annotating namespace {name}"))?;
    Ok(())
}

/// The API server's message for a create the webhook refused.
/// Dry-run creates of `pod` until the API server refuses it with a message
/// containing `needle` (webhook configurations take effect eventually); the
/// message.
async fn refusal_by(api: &Api<Pod>, pod: &Pod, needle: &str) -> anyhow::Result<String> {
    landgate_e2e::eventually(
        &format!("a refusal containing {needle:?}"),
        Duration::from_secs(30),
        || async {
            match api.create(&DRY_RUN, pod).await {
                Ok(_) => bail!("admitted"),
                Err(kube::Error::Api(status)) if status.message.contains(needle) => {
                    Ok(Some(status.message))
                }
                Err(kube::Error::Api(status)) => bail!("refused otherwise: {}", status.message),
                Err(err) => Err(err.into()),
            }
        },
    )
    .await
}

fn refusal_of(result: Result<Pod, kube::Error>) -> anyhow::Result<String> {
    match result {
        Ok(_) => bail!("the pod was admitted"),
        Err(kube::Error::Api(status)) => Ok(status.message),
        Err(err) => Err(err).context("creating the pod"),
    }
}

#[test]
fn kubectl_server_dry_run_shows_mutation_and_stores_nothing() {
    run(|env| async move {
        let namespace = env.namespace("e2e-dry-run", &[INJECT_LABEL]).await?;
        let pod = pods::sample_pod("dry");
        let file = env.manifest(&pod)?;
        let output = env
            .kubectl(&[
                "-n",
                &namespace,
                "apply",
                "--dry-run=server",
                "-f",
                &file,
                "-o",
                "yaml",
            ])
            .await?;
        ensure!(
            output.status.success(),
            "kubectl apply --dry-run=server failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let shown: Pod = serde_yaml_ng::from_slice(&output.stdout)
            .context("parsing kubectl's -o yaml output as a Pod")?;
        check_wrapped(&pod, &shown)?;
        ensure!(
            env.pods(&namespace).get_opt("dry").await?.is_none(),
            "kubectl apply --dry-run=server stored pod dry"
        );
        Ok(())
    });
}

#[test]
fn kubectl_prints_the_webhooks_warnings() {
    run(|env| async move {
        let namespace = env.namespace("e2e-warnings", &[INJECT_LABEL]).await?;
        // Default --unknown-entrypoint admit-unwrapped: admitted, whole pod
        // unwrapped, with a warning naming the container.
        let pod = pods::entrypoint_unknown_pod("unknown-entrypoint", &[]);
        let file = env.manifest(&pod)?;
        let output = env
            .kubectl(&["-n", &namespace, "create", "-f", &file])
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(output.status.success(), "kubectl create failed: {stderr}");
        ensure!(
            stderr
                .lines()
                .any(|l| l.starts_with("Warning:") && l.contains("no-command")),
            "kubectl printed no webhook warning naming container no-command; stderr:\n{stderr}"
        );
        check_untouched(&pod, &env.pods(&namespace).get("unknown-entrypoint").await?)
    });
}

#[test]
fn kubectl_shows_the_webhooks_rejection_message() {
    run(|env| async move {
        let namespace = env.namespace("e2e-rejection", &[INJECT_LABEL]).await?;
        // `required` enforcement cannot be met for a container whose
        // entrypoint is unknown: refused, naming the container.
        let pod = pods::entrypoint_unknown_pod(
            "required-unknown",
            &[("landgate.dev/enforcement", "required")],
        );
        let file = env.manifest(&pod)?;
        let output = env
            .kubectl(&["-n", &namespace, "create", "-f", &file])
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !output.status.success(),
            "kubectl create succeeded for a pod that must be refused"
        );
        ensure!(
            stderr.contains("denied the request") && stderr.contains("no-command"),
            "kubectl did not show the webhook's denial naming container no-command; stderr:\n{stderr}"
        );
        ensure!(
            env.pods(&namespace)
                .get_opt("required-unknown")
                .await?
                .is_none(),
            "the refused pod was stored"
        );
        Ok(())
    });
}

#[test]
fn failure_policy_fail_refuses_and_ignore_admits_when_the_webhook_is_down() {
    run(|env| async move {
        const NAME: &str = "landgate-e2e-failure-policy";
        const LABEL: (&str, &str) = ("landgate-e2e/failure-policy", "on");
        // A second landgate instance with its own configuration, selecting
        // only this namespace, so stopping it leaves the main one alone.
        let namespace = env.namespace("e2e-failure-policy", &[LABEL]).await?;
        let mut instance =
            WebhookProcess::start(&env.cluster, NAME, &env.pki, &["--no-resolve"]).await?;
        let configurations = Api::<MutatingWebhookConfiguration>::all(env.client.clone());
        let mut configuration =
            landgate_configuration(NAME, &instance.mutate_url(), &env.pki.ca_pem()?)?;
        for hook in configuration.webhooks.iter_mut().flatten() {
            hook.namespace_selector = Some(serde_json::from_value(
                json!({"matchLabels": {LABEL.0: LABEL.1}}),
            )?);
            hook.failure_policy = Some("Fail".into());
        }
        configurations
            .create(&PostParams::default(), &configuration)
            .await?;
        wait_until_wrapped(&env.client, &namespace).await?;

        let status = instance.stop(&env.cluster).await?;
        ensure!(status.success(), "SIGTERM: webhook exited with {status}");
        let api = env.pods(&namespace);
        let refused = pods::simple_pod("refused");
        match api.create(&PostParams::default(), &refused).await {
            Ok(_) => bail!("failurePolicy Fail: pod admitted while the webhook is down"),
            Err(kube::Error::Api(status)) => ensure!(
                status.message.contains("failed calling webhook"),
                "unexpected refusal: {}",
                status.message
            ),
            Err(err) => return Err(err).context("creating pod refused"),
        }
        ensure!(
            api.get_opt("refused").await?.is_none(),
            "refused pod stored"
        );

        for hook in configuration.webhooks.iter_mut().flatten() {
            hook.failure_policy = Some("Ignore".into());
        }
        configuration.metadata.resource_version =
            configurations.get(NAME).await?.metadata.resource_version;
        configurations
            .replace(NAME, &PostParams::default(), &configuration)
            .await?;
        let admitted = pods::simple_pod("admitted");
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        wait_until("failurePolicy Ignore to take effect", || async {
            Ok(api.create(&dry_run, &admitted).await.ok().map(|_| ()))
        })
        .await?;
        create(&api, &admitted).await?;
        check_untouched(&admitted, &api.get("admitted").await?)?;

        // The validating webhook (the main instance, up) behind the one that
        // is down: what Ignore let through is refused, naming why.
        let validating = Api::<ValidatingWebhookConfiguration>::all(env.client.clone());
        let mut guard = landgate_validating_configuration(
            NAME,
            &env.webhook.validate_url(),
            &env.pki.ca_pem()?,
        )?;
        for hook in guard.webhooks.iter_mut().flatten() {
            hook.namespace_selector = Some(serde_json::from_value(
                json!({"matchLabels": {LABEL.0: LABEL.1}}),
            )?);
        }
        validating.create(&PostParams::default(), &guard).await?;
        wait_until_validating(&env.client, &namespace).await?;
        let unguarded = pods::simple_pod("unguarded");
        let refusal = refusal_of(api.create(&PostParams::default(), &unguarded).await)?;
        for part in [
            "pods.validate.landgate.dev",
            "is not wrapped but should be",
            "carries no landgate.dev/status",
            "container \"app\" (spec.containers[0])",
        ] {
            ensure!(
                refusal.contains(part),
                "{part:?} not in the refusal: {refusal}"
            );
        }
        ensure!(
            api.get_opt("unguarded").await?.is_none(),
            "refused pod stored"
        );
        landgate_event(&env.client, &namespace, "NotWrapped", "unguarded").await?;
        validating.delete(NAME, &DeleteParams::default()).await?;
        configurations
            .delete(NAME, &DeleteParams::default())
            .await?;
        Ok(())
    });
}

/// A mutating webhook that changes a wrapped container after landgate's
/// last call. With landgate's shipped `reinvocationPolicy: IfNeeded` the API
/// server calls landgate again and its mutating pass refuses the change; an
/// operator may register it with `Never`, as here (landgate's own mutating
/// webhook, from its manifest, but `Never`), and then only validation, which
/// runs after every mutation, sees it.
#[test]
fn validation_refuses_a_pod_a_later_webhook_unwrapped() {
    run(|env| async move {
        const LANDGATE: &str = "landgate-e2e-never";
        const NAME: &str = "zz-landgate-e2e-unwrapper";
        const LABEL: (&str, &str) = ("landgate-e2e/unwrapper", "on");
        let selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
            serde_json::from_value(json!({"matchLabels": {LABEL.0: LABEL.1}}))?;
        let namespace = env.namespace("e2e-unwrapper", &[LABEL]).await?;
        let ca = env.pki.ca_pem()?;
        let mut landgate = landgate_configuration(LANDGATE, &env.webhook.mutate_url(), &ca)?;
        for hook in landgate.webhooks.iter_mut().flatten() {
            hook.namespace_selector = Some(selector.clone());
            hook.reinvocation_policy = Some("Never".into());
        }
        let mut guard =
            landgate_validating_configuration(LANDGATE, &env.webhook.validate_url(), &ca)?;
        for hook in guard.webhooks.iter_mut().flatten() {
            hook.namespace_selector = Some(selector.clone());
        }
        let unwrapper = Appender::start(&env.pki.cert(), &env.pki.key()).await?;
        let configuration = test_webhook(
            NAME,
            "unwrap.e2e.landgate.dev",
            &unwrapper.unwrap_url(),
            LABEL,
            &ca,
        )?;
        let configurations = Api::<MutatingWebhookConfiguration>::all(env.client.clone());
        let validating = Api::<ValidatingWebhookConfiguration>::all(env.client.clone());
        configurations
            .create(&PostParams::default(), &landgate)
            .await?;
        validating.create(&PostParams::default(), &guard).await?;
        configurations
            .create(&PostParams::default(), &configuration)
            .await?;
        let api = env.pods(&namespace);
        let pod = pods::simple_pod("unwrapped-later");
        let refusal = refusal_by(
            &api,
            &pod,
            "admission webhook \"pods.validate.landgate.dev\" denied",
        )
        .await?;
        for part in [
            "pods.validate.landgate.dev",
            "container \"app\" (spec.containers[0])",
            "its command no longer starts with /landgate/landgate exec --",
        ] {
            ensure!(
                refusal.contains(part),
                "{part:?} not in the refusal: {refusal}"
            );
        }
        ensure!(unwrapper.reviews() > 0, "the unwrapper was never called");
        ensure!(
            api.get_opt("unwrapped-later").await?.is_none(),
            "a dry run stored the pod"
        );
        configurations
            .delete(NAME, &DeleteParams::default())
            .await?;
        configurations
            .delete(LANDGATE, &DeleteParams::default())
            .await?;
        validating
            .delete(LANDGATE, &DeleteParams::default())
            .await?;
        Ok(())
    });
}

#[test]
fn reinvocation_wraps_an_appended_container_and_nothing_twice() {
    run(|env| async move {
        const NAME: &str = "zz-landgate-e2e-appender";
        const LABEL: (&str, &str) = ("landgate-e2e/appender", "on");
        let namespace = env
            .namespace("e2e-reinvocation", &[INJECT_LABEL, LABEL])
            .await?;
        let appender = Appender::start(&env.pki.cert(), &env.pki.key()).await?;
        let configuration = test_webhook(
            NAME,
            "append.e2e.landgate.dev",
            &appender.url(),
            LABEL,
            &env.pki.ca_pem()?,
        )?;
        let configurations = Api::<MutatingWebhookConfiguration>::all(env.client.clone());
        configurations
            .create(&PostParams::default(), &configuration)
            .await?;
        let api = env.pods(&namespace);
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let probe = pods::simple_pod("probe");
        wait_until("the appender to be called", || async {
            let shown = api.create(&dry_run, &probe).await?;
            Ok(shown
                .spec
                .is_some_and(|s| s.containers.iter().any(|c| c.name == APPENDED))
                .then_some(()))
        })
        .await?;

        let pod = pods::simple_pod("reinvoked");
        create(&api, &pod).await?;
        let stored = api.get("reinvoked").await?;
        // What landgate must have ended with: the submitted container and the
        // appended one, each wrapped exactly once.
        let mut expected = pod.clone();
        if let Some(spec) = expected.spec.as_mut() {
            spec.containers.push(pods::from_json_container(json!({
                "name": APPENDED,
                "image": "busybox:1.36",
                "command": appended_command(),
            })));
        }
        check_wrapped(&expected, &stored)?;
        ensure!(appender.reviews() > 0, "the appender was never called");
        configurations
            .delete(NAME, &DeleteParams::default())
            .await?;
        Ok(())
    });
}

#[test]
fn certificate_rotation_during_200_creates_loses_none() {
    run(|env| async move {
        const PODS: usize = 200;
        const WORKERS: usize = 4;
        const ROTATIONS: [usize; 2] = [PODS / 5, PODS / 2];
        // Creates from here on wait until both rotations were seen on new
        // API server connections (or failed), so that both happen while the
        // loop runs.
        const GATE: usize = PODS * 3 / 4;
        let namespace = env.namespace("e2e-rotation", &[INJECT_LABEL]).await?;
        let ca = env.pki.ca_pem()?;
        let first = env.webhook.served_certificate(&ca).await?;
        ensure!(
            first == env.pki.current_cert_der()?,
            "the webhook does not serve the certificate on disk"
        );

        let api = env.pods(&namespace);
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..WORKERS {
            let (api, next, done, released) =
                (api.clone(), next.clone(), done.clone(), released.clone());
            workers.spawn(async move {
                let mut failures = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= PODS {
                        return failures;
                    }
                    while i >= GATE && !released.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let pod = pods::simple_pod(&format!("rotation-{i:03}"));
                    match api.create(&PostParams::default(), &pod).await {
                        Ok(stored) => {
                            if let Err(err) = check_wrapped(&pod, &stored) {
                                failures.push(format!("rotation-{i:03}: {err:#}"));
                            }
                        }
                        Err(err) => failures.push(format!("rotation-{i:03}: {err}")),
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            });
        }

        let rotations = async {
            let mut served = vec![first];
            for (n, at) in ROTATIONS.into_iter().enumerate() {
                while done.load(Ordering::SeqCst) < at {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let known = apiserver_connections(env.webhook.port).await?;
                ensure!(
                    !known.is_empty(),
                    "the API server holds no connection to the webhook"
                );
                // Same CA, new key and leaf, swapped like a Secret volume.
                let rotated = env.pki.rotate().await?;
                let now = wait_for_served(env, &ca, &rotated).await?;
                ensure!(
                    !served.contains(&now),
                    "rotation {n}: the served certificate did not change"
                );
                served.push(now);
                // The API server keeps one HTTP/2 connection to the webhook
                // for as long as it can, so it would never see the new
                // certificate. Re-register the same CA with n+1 trailing
                // newlines (what a CA injector's re-sync looks like): a new
                // caBundle is a new client transport, so the next creates
                // handshake afresh, against the rotated certificate.
                let mut bundle = ca.clone();
                bundle.extend(std::iter::repeat_n(b'\n', n + 1));
                env.set_landgate_ca_bundle(bundle).await?;
                // Dry-run creates keep requests flowing while the API server
                // picks up the new bundle (the loop may be at the gate); each
                // one must succeed like the loop's own creates.
                let probe = pods::simple_pod("rotation-probe");
                let dry_run = PostParams {
                    dry_run: true,
                    ..Default::default()
                };
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let shown = api
                        .create(&dry_run, &probe)
                        .await
                        .with_context(|| format!("dry-run create after rotation {n}"))?;
                    check_wrapped(&probe, &shown)?;
                    let now = apiserver_connections(env.webhook.port).await?;
                    if now.difference(&known).next().is_some() {
                        break;
                    }
                    ensure!(
                        Instant::now() < deadline,
                        "rotation {n}: the API server opened no new connection to the webhook \
                         within 30s of the caBundle update (connections: {now:?})"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            anyhow::Ok(())
        }
        .await;
        released.store(true, Ordering::SeqCst);

        let mut failures = Vec::new();
        while let Some(result) = workers.join_next().await {
            failures.extend(result?);
        }
        rotations?;
        ensure!(
            done.load(Ordering::SeqCst) == PODS,
            "only {} of {PODS} creates ran",
            done.load(Ordering::SeqCst)
        );
        ensure!(
            failures.is_empty(),
            "{} of {PODS} creates failed during certificate rotation:\n{}",
            failures.len(),
            failures.join("\n")
        );
        let stored = api.list(&ListParams::default()).await?.items.len();
        ensure!(stored == PODS, "{stored} pods stored, expected {PODS}");
        Ok(())
    });
}

/// The webhook re-reads its credentials at connection time; give it a
/// moment (mtime granularity) to pick up the rotated pair.
async fn wait_for_served(env: &Env, ca: &[u8], expected: &[u8]) -> anyhow::Result<Vec<u8>> {
    landgate_e2e::eventually(
        "the webhook to serve the rotated certificate",
        Duration::from_secs(10),
        || async {
            let served = env.webhook.served_certificate(ca).await?;
            Ok((served == expected).then_some(served))
        },
    )
    .await
}

/// Local ports of kube-apiserver's established connections to `port`.
async fn apiserver_connections(port: u16) -> anyhow::Result<BTreeSet<u16>> {
    let output = tokio::process::Command::new("ss")
        .args(["-Htnp", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .output()
        .await
        .context("running ss (apt-get install iproute2)")?;
    ensure!(
        output.status.success(),
        "ss failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Recv-Q Send-Q Local:Port Peer:Port users:(("kube-apiserver-",pid=..,fd=..))
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("\"kube-apiserver"))
        .filter_map(|line| line.split_whitespace().nth(2))
        .filter_map(|local| local.rsplit_once(':'))
        .filter_map(|(_, port)| port.parse().ok())
        .collect())
}

#[test]
fn podsecurity_restricted_admits_an_injected_compliant_pod() {
    run(|env| async move {
        let namespace = env
            .namespace(
                "e2e-restricted",
                &[
                    INJECT_LABEL,
                    ("pod-security.kubernetes.io/enforce", "restricted"),
                    ("pod-security.kubernetes.io/enforce-version", "latest"),
                ],
            )
            .await?;
        let api = env.pods(&namespace);
        // Control: PodSecurity really enforces here.
        match api
            .create(&PostParams::default(), &pods::simple_pod("not-restricted"))
            .await
        {
            Ok(_) => bail!("PodSecurity restricted admitted a non-compliant pod"),
            Err(kube::Error::Api(status)) => ensure!(
                status.message.contains("violates PodSecurity"),
                "unexpected refusal of the non-compliant pod: {}",
                status.message
            ),
            Err(err) => return Err(err).context("creating pod not-restricted"),
        }
        let pod = pods::restricted_pod("restricted");
        create(&api, &pod)
            .await
            .context("PodSecurity restricted refused the compliant pod after injection")?;
        check_wrapped(&pod, &api.get("restricted").await?)
    });
}

/// The admission escapes of the security review, against the real API
/// server: it accepts a mount of a volume that only exists after landgate's
/// patch, and its ServiceAccount plugin adds token mounts on reinvocation.
#[test]
fn pods_that_would_replace_the_launcher_are_refused() {
    run(|env| async move {
        let namespace = env.namespace("e2e-escapes", &[INJECT_LABEL]).await?;
        let api = env.pods(&namespace);
        let refused = |result: Result<Pod, kube::Error>, what: &str, needle: &str| match result {
            Ok(_) => bail!("{what}: the API server stored the pod"),
            Err(kube::Error::Api(status)) if status.message.contains(needle) => Ok(()),
            Err(err) => bail!("{what}: refused, but not by landgate naming {needle:?}: {err}"),
        };

        // 1. An init container that mounts the launcher volume by name.
        let mut by_name = serde_json::to_value(pods::simple_pod("by-name"))?;
        by_name["spec"]["initContainers"] = json!([{
            "name": "prep", "image": "busybox:1.36",
            "command": ["sh", "-c", "cp /bin/true /lg/landgate"],
            "volumeMounts": [{"name": "landgate", "mountPath": "/lg"}],
        }]);
        let by_name: Pod = serde_json::from_value(by_name)?;
        refused(
            api.create(&PostParams::default(), &by_name).await,
            "mount of the landgate volume by name",
            "mounts volume \"landgate\"",
        )?;

        // 2. A relative mount path that the kubelet puts at /landgate/bin.
        let mut relative = serde_json::to_value(pods::simple_pod("relative"))?;
        relative["spec"]["volumes"] = json!([{"name": "tools", "emptyDir": {}}]);
        relative["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "tools", "mountPath": "landgate/bin"}]);
        let relative: Pod = serde_json::from_value(relative)?;
        refused(
            api.create(&PostParams::default(), &relative).await,
            "relative mount path onto /landgate/bin",
            "landgate reserves",
        )?;

        // 3. A copy of a pod landgate wrapped (status and all), with a
        // tenant volume over landgate-init's /usr/local/bin.
        let stored = create(&api, &pods::simple_pod("original")).await?;
        let mut forged = serde_json::to_value(&stored)?;
        forged["metadata"] = json!({
            "name": "forged",
            "annotations": stored.metadata.annotations,
        });
        forged.as_object_mut().map(|o| o.remove("status"));
        forged["spec"].as_object_mut().map(|o| o.remove("nodeName"));
        forged["spec"]["volumes"]
            .as_array_mut()
            .context("the stored pod has volumes")?
            .push(json!({"name": "evil", "configMap": {"name": "evil", "defaultMode": 493}}));
        forged["spec"]["initContainers"][0]["volumeMounts"]
            .as_array_mut()
            .context("landgate-init has mounts")?
            .push(json!({"name": "evil", "mountPath": "/usr/local/bin", "readOnly": true}));
        // landgate-init is rebuilt as landgate builds it: the tenant's mount
        // is gone, the ServiceAccount token mount stays.
        let forged: Pod = serde_json::from_value(forged)?;
        let stored_forged = create(&api, &forged).await?;
        let init = stored_forged
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .and_then(|c| c.first())
            .context("the forged pod has init containers")?;
        let mounts: Vec<&str> = init
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        ensure!(
            init.name == "landgate-init" && !mounts.contains(&"/usr/local/bin"),
            "landgate-init of the forged pod was not rebuilt: mounts {mounts:?}"
        );
        ensure!(
            mounts.contains(&"/var/run/secrets/kubernetes.io/serviceaccount"),
            "the rebuilt landgate-init lost the ServiceAccount token mount: {mounts:?}"
        );

        // The same copy without the extra mount verifies: the ServiceAccount
        // token mounts the API server added are landgate-init's only extras.
        let mut copy = serde_json::to_value(&stored)?;
        copy["metadata"] = json!({"name": "copy", "annotations": stored.metadata.annotations});
        copy.as_object_mut().map(|o| o.remove("status"));
        let copy: Pod = serde_json::from_value(copy)?;
        let created = create(&api, &copy).await?;
        check_wrapped(&pods::simple_pod("copy"), &created)
    });
}

/// The in-place changes the API server allows on a running pod, against a
/// wrapped one (security review: the webhook used to see only CREATE).
/// `kubectl debug` goes through the `ephemeralcontainers` subresource, which
/// a rule on `pods` does not match; a debug container may mount volumes,
/// and is wrapped like the pod's own containers (refused without a command
/// where its image's entrypoint is unknown; as it is under `allow`).
/// No kubelet runs here, so the pod stays Pending: what is checked is what
/// the API server stores.
#[test]
fn updates_that_would_reach_a_wrapped_pods_sandbox_are_refused() {
    run(|env| async move {
        let namespace = env.namespace("e2e-updates", &[INJECT_LABEL]).await?;
        let api = env.pods(&namespace);
        let submitted = pods::simple_pod("target");
        let stored = create(&api, &submitted).await?;
        check_wrapped(&submitted, &stored)?;
        let status = |pod: &Pod| {
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(pods::STATUS_ANNOTATION))
                .cloned()
        };
        let launcher_image = |pod: &Pod| {
            pod.spec
                .iter()
                .flat_map(|s| s.init_containers.iter().flatten())
                .find(|c| c.name == pods::INIT_CONTAINER)
                .and_then(|c| c.image.clone())
        };
        let refused = |result: Result<Pod, kube::Error>, what: &str, needle: &str| match result {
            Ok(_) => bail!("{what}: the API server accepted the update"),
            Err(kube::Error::Api(status))
                if status
                    .message
                    .contains(".landgate.dev\" denied the request")
                    && status.message.contains(needle) =>
            {
                Ok(())
            }
            Err(err) => bail!("{what}: refused, but not by landgate naming {needle:?}: {err}"),
        };
        let params = PatchParams::default();

        // 1. kubectl debug with a writable mount of the launcher volume.
        let debugger = |mounts: serde_json::Value| {
            json!({"spec": {"ephemeralContainers": [{
                "name": "debugger",
                "image": "busybox:1.36",
                "command": ["sh"],
                "volumeMounts": mounts,
            }]}})
        };
        let mounting = debugger(json!([{"name": pods::VOLUME, "mountPath": "/lg"}]));
        refused(
            api.patch_ephemeral_containers("target", &params, &Patch::Strategic(mounting))
                .await,
            "ephemeral container mounting the launcher volume",
            "(spec.ephemeralContainers[0].volumeMounts[0]) mounts volume \"landgate\"",
        )?;

        // 2. The same debug container without the mount: wrapped like the
        // pod's own containers (issue 12): its command through the launcher,
        // the launcher mounted read-only, its own policy (no ports).
        let debugged = api
            .patch_ephemeral_containers("target", &params, &Patch::Strategic(debugger(json!([]))))
            .await
            .context("adding a plain ephemeral container under exec: sandboxed")?;
        check_debug_container_wrapped(&debugged, "debugger", &["sh"])?;

        // The same through kubectl debug itself (no -i: kubectl adds the
        // container and returns; nothing runs without a kubelet).
        let custom = env.cluster.dir.join("debug-mount.json");
        std::fs::write(
            &custom,
            json!({"volumeMounts": [{"name": pods::VOLUME, "mountPath": "/lg"}]}).to_string(),
        )?;
        let custom = custom.to_string_lossy().into_owned();
        let debug = ["-n", &namespace, "debug", "target", "--image=busybox:1.36"];
        let mounting = ["-c", "kubectl-mounting", "--custom", &custom, "--", "sh"];
        let output = env.kubectl(&[&debug[..], &mounting].concat()).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !output.status.success()
                && stderr.contains("denied the request")
                && stderr.contains("mounts volume \"landgate\""),
            "kubectl debug --custom with a launcher volume mount was not refused by landgate \
             (exit {}); stderr:\n{stderr}",
            output.status
        );
        let output = env
            .kubectl(&[&debug[..], &["-c", "kubectl-plain", "--", "sh"]].concat())
            .await?;
        ensure!(
            output.status.success(),
            "plain kubectl debug failed; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        check_debug_container_wrapped(&api.get("target").await?, "kubectl-plain", &["sh"])?;
        // Without a command it would run its image's entrypoint, which this
        // instance does not look up (--no-resolve): refused, saying how.
        let output = env
            .kubectl(&[&debug[..], &["-c", "kubectl-no-command"]].concat())
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !output.status.success()
                && stderr.contains("sets no command")
                && stderr.contains("-- sh"),
            "kubectl debug without a command was not refused by landgate (exit {}); stderr:\n{stderr}",
            output.status
        );

        // Under the namespace's landgate.dev/exec: allow, a debug container
        // is admitted as it is (unsandboxed, the namespace's choice).
        annotate_namespace(
            &env.client,
            &namespace,
            json!({"landgate.dev/exec": "allow"}),
        )
        .await?;
        let unsandboxed = json!({"spec": {"ephemeralContainers": [{
            "name": "unsandboxed", "image": "busybox:1.36", "command": ["sh"],
        }]}});
        let command_of = |pod: &Pod| {
            pod.spec
                .iter()
                .flat_map(|s| s.ephemeral_containers.iter().flatten())
                .find(|e| e.name == "unsandboxed")
                .and_then(|e| e.command.clone())
        };
        // Dry runs until the webhook's namespace cache sees the annotation
        // (they call the webhooks, which declare NoneOnDryRun).
        let dry_run = PatchParams {
            dry_run: true,
            ..PatchParams::default()
        };
        landgate_e2e::eventually(
            "a debug container left as it is under landgate.dev/exec: allow",
            Duration::from_secs(10),
            || async {
                let pod = api
                    .patch_ephemeral_containers(
                        "target",
                        &dry_run,
                        &Patch::Strategic(unsandboxed.clone()),
                    )
                    .await?;
                Ok((command_of(&pod) == Some(vec!["sh".to_owned()])).then_some(()))
            },
        )
        .await?;
        let debugged = api
            .patch_ephemeral_containers("target", &params, &Patch::Strategic(unsandboxed))
            .await
            .context("adding an ephemeral container under allow")?;
        ensure!(
            command_of(&debugged) == Some(vec!["sh".to_owned()]),
            "under landgate.dev/exec: allow the debug container was changed: {:?}",
            command_of(&debugged)
        );

        // 3. landgate-init's image replaced in place (images are mutable):
        // what `kubectl set image pod/target landgate-init=…` sends, a
        // strategic merge patch that matches init containers by name.
        let swap = json!({"spec": {"initContainers": [
            {"name": pods::INIT_CONTAINER, "image": "busybox:1.36"},
        ]}});
        refused(
            api.patch("target", &params, &Patch::Strategic(swap)).await,
            "landgate-init image swap",
            "init container \"landgate-init\" (spec.initContainers[0]) in image;",
        )?;

        // 4. The status annotation edited.
        let edit = json!({"metadata": {"annotations": {
            pods::STATUS_ANNOTATION: "{\"version\":1,\"skipped\":\"edited\"}",
        }}});
        refused(
            api.patch("target", &params, &Patch::Merge(edit)).await,
            "status annotation edit",
            "edits annotation landgate.dev/status",
        )?;

        // 5. The opt-out label, which would keep every later update of the
        // pod from landgate (objectSelector matches old OR new object).
        let opt_out = json!({"metadata": {"labels": {pods::OPT_OUT_ANNOTATION: "false"}}});
        refused(
            api.patch("target", &params, &Patch::Merge(opt_out)).await,
            "opt-out label on a wrapped pod",
            "sets label landgate.dev/inject=\"false\"",
        )?;

        // 6. A wrapped container's image: its command, PATH and policy were
        // built for the image landgate admitted (`kubectl set image`).
        let app = stored
            .spec
            .as_ref()
            .map(|s| s.containers[0].name.clone())
            .unwrap_or_default();
        let output = env
            .kubectl(&[
                "-n",
                &namespace,
                "set",
                "image",
                "pod/target",
                &format!("{app}=busybox:1.37"),
            ])
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !output.status.success()
                && stderr.contains("pods.validate.landgate.dev")
                && stderr.contains(&format!("changes the image of container {app:?}")),
            "kubectl set image on a wrapped container was not refused by landgate (exit {}); \
             stderr:\n{stderr}",
            output.status
        );

        // Control: ordinary updates still pass, here as a whole-object
        // PUT (activeDeadlineSeconds, a label).
        let mut ordinary = api.get("target").await?;
        if let Some(spec) = ordinary.spec.as_mut() {
            spec.active_deadline_seconds = Some(3600);
        }
        ordinary
            .metadata
            .labels
            .get_or_insert_default()
            .insert("tier".into(), "front".into());
        api.replace("target", &PostParams::default(), &ordinary)
            .await
            .context("an activeDeadlineSeconds and label update of a wrapped pod")?;

        let after = api.get("target").await?;
        ensure!(
            status(&after) == status(&stored) && launcher_image(&after) == launcher_image(&stored),
            "the sandbox changed: status {:?} -> {:?}, landgate-init image {:?} -> {:?}",
            status(&stored),
            status(&after),
            launcher_image(&stored),
            launcher_image(&after)
        );
        Ok(())
    });
}

#[test]
fn images_without_command_are_resolved_with_pull_secrets_and_pinned() {
    run(|env| async move {
        const NAME: &str = "landgate-e2e-resolve";
        const LABEL: (&str, &str) = ("landgate-e2e/resolve", "on");
        const PATH: &str = "/opt/web/bin:/usr/local/bin:/usr/bin:/bin";
        // A private registry: only a pod's pull secret opens it.
        let registry = TestRegistry::start(
            &env.cluster.dir.join("registry"),
            Some(("e2e", "pull-secret-password")),
        )
        .await?;
        let spec = ImageSpec {
            entrypoint: Some(vec!["/usr/local/bin/web".into()]),
            cmd: Some(vec!["--port".into(), "8080".into()]),
            env: vec![format!("PATH={PATH}")],
            ..ImageSpec::default()
        };
        let digest = registry.push_image("shop/web", "1.0", &spec).await?;
        let image = format!("{}/shop/web:1.0", registry.host());

        // A second instance that looks images up, with the pods' pull
        // secrets read through the API server, for this namespace only.
        let namespace = env.namespace("e2e-resolve", &[LABEL]).await?;
        let ca = registry.ca_path();
        let mut instance = WebhookProcess::start(
            &env.cluster,
            NAME,
            &env.pki,
            &["--registry-ca", &ca.to_string_lossy(), "--pull-secrets"],
        )
        .await?;
        let configurations = Api::<MutatingWebhookConfiguration>::all(env.client.clone());
        let mut configuration =
            landgate_configuration(NAME, &instance.mutate_url(), &env.pki.ca_pem()?)?;
        for hook in configuration.webhooks.iter_mut().flatten() {
            hook.namespace_selector = Some(serde_json::from_value(
                json!({"matchLabels": {LABEL.0: LABEL.1}}),
            )?);
        }
        configurations
            .create(&PostParams::default(), &configuration)
            .await?;

        let auth = base64::engine::general_purpose::STANDARD.encode("e2e:pull-secret-password");
        let config = json!({"auths": {registry.host(): {"auth": auth}}}).to_string();
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "registry"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": config},
        }))?;
        Api::<Secret>::namespaced(env.client.clone(), &namespace)
            .create(&PostParams::default(), &secret)
            .await?;

        // Without the pull secret the registry refuses, and the pod is
        // admitted unwrapped (the default), saying why.
        let api = env.pods(&namespace);
        let bare = pods::from_json(json!({
            "metadata": {"name": "no-secret"},
            "spec": {"containers": [{"name": "web", "image": image}]},
        }));
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        wait_until("the resolving instance to be called", || async {
            let stored = api.create(&dry_run, &bare).await?;
            let status = stored
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("landgate.dev/status"))
                .map(|_| ());
            Ok(status)
        })
        .await?;
        let stored = create(&api, &bare).await?;
        let status = stored.metadata.annotations.unwrap_or_default()["landgate.dev/status"].clone();
        ensure!(
            pods::records_a_skip(&status) && status.contains("unauthorized"),
            "without a pull secret: {status}"
        );

        // A Deployment without `command`, with the pull secret: its pods
        // are stored running the image's entrypoint and Cmd through the
        // launcher, with the image's PATH, pinned to the digest looked up.
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "imagePullSecrets": [{"name": "registry"}],
                        "containers": [{
                            "name": "web", "image": image,
                            "ports": [{"containerPort": 8080}],
                        }],
                    },
                },
            },
        }))?;
        Api::<Deployment>::namespaced(env.client.clone(), &namespace)
            .create(&PostParams::default(), &deployment)
            .await?;
        let created = landgate_e2e::eventually(
            "kube-controller-manager to create the pod of Deployment web",
            Duration::from_secs(60),
            || async {
                let list = api.list(&ListParams::default().labels("app=web")).await?;
                Ok(list.items.into_iter().next())
            },
        )
        .await?;
        let web = &created.spec.as_ref().context("pod spec")?.containers[0];
        ensure!(
            web.command.as_deref()
                == Some(
                    &["/landgate/landgate", "exec", "--", "/usr/local/bin/web"].map(String::from)[..]
                ),
            "command: {:?}",
            web.command
        );
        ensure!(
            web.args.as_deref() == Some(&["--port", "8080"].map(String::from)[..]),
            "args: {:?}",
            web.args
        );
        ensure!(
            web.image.as_deref() == Some(format!("{image}@{digest}").as_str()),
            "image: {:?} (digest {digest})",
            web.image
        );
        let path = web
            .env
            .iter()
            .flatten()
            .rfind(|e| e.name == "PATH")
            .and_then(|e| e.value.clone());
        ensure!(
            path.as_deref() == Some(format!("/landgate/bin:{PATH}").as_str()),
            "PATH: {path:?}"
        );

        // kubectl debug with that image and no command: the debug container
        // runs the image's entrypoint, looked up with the pod's pull secret,
        // through the launcher.
        let pod = created.metadata.name.clone().context("pod name")?;
        let output = env
            .kubectl(&[
                "-n", &namespace, "debug", &pod, "--image", &image, "-c", "debugger",
            ])
            .await?;
        ensure!(
            output.status.success(),
            "kubectl debug without a command failed; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let debugged = api.get(&pod).await?;
        check_debug_container_wrapped(&debugged, "debugger", &["/usr/local/bin/web"])?;

        configurations
            .delete(NAME, &DeleteParams::default())
            .await?;
        let status = instance.stop(&env.cluster).await?;
        ensure!(status.success(), "SIGTERM: webhook exited with {status}");
        Ok(())
    });
}

/// `kubectl exec` (issue 12), proven by what reaches the node: a Node whose
/// kubelet endpoint is a stand-in that records the streaming requests the
/// API server forwards. Into a wrapped pod, an exec by absolute path, and
/// the `tar` that `kubectl cp` execs, arrive rewritten to run through the
/// launcher, and attach reaches the node unchanged; under the namespace's
/// `landgate.dev/exec: deny` each is refused with landgate's message and
/// nothing reaches the node; into a pod of a namespace landgate does not
/// serve, it arrives as sent.
#[test]
fn kubectl_exec_reaches_the_node_through_the_launcher_or_is_refused() {
    run(|env| async move {
        const NODE: &str = "e2e-kubelet-standin";
        let kubelet = Appender::start(&env.pki.cert(), &env.pki.key()).await?;
        let nodes: Api<Node> = Api::all(env.client.clone());
        let node: Node = serde_json::from_value(json!({"metadata": {"name": NODE}}))?;
        nodes.create(&PostParams::default(), &node).await?;
        nodes
            .patch_status(
                NODE,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}},
                }})),
            )
            .await?;
        let on_node = |name: &str| {
            let mut pod = pods::simple_pod(name);
            if let Some(spec) = pod.spec.as_mut() {
                spec.node_name = Some(NODE.to_owned());
            }
            pod
        };
        let namespace = env.namespace("e2e-exec", &[INJECT_LABEL]).await?;
        create(&env.pods(&namespace), &on_node("target")).await?;
        let plain = env.namespace("e2e-exec-plain", &[]).await?;
        create(&env.pods(&plain), &on_node("plain")).await?;

        let exec = |namespace: String, pod: &'static str| async move {
            env.kubectl(&[
                "-n", &namespace, "exec", pod, "-c", "app", "--", "/bin/sh", "-c", "id",
            ])
            .await
        };
        let sent = ["/bin/sh", "-c", "id"];
        let mut through_launcher = vec!["/landgate/landgate", "exec", "--"];
        through_launcher.extend(sent);

        // Sandboxed (the default): rewritten.
        exec(namespace.clone(), "target").await?;
        let recorded = kubelet.kubelet_requests();
        let [request] = recorded.as_slice() else {
            bail!("expected one exec at the node, got {recorded:?}");
        };
        ensure!(
            request.starts_with(&format!("/exec/{namespace}/target/app?")),
            "unexpected exec target at the node: {request}"
        );
        ensure!(
            commands_of(request) == through_launcher,
            "the node was asked to run {:?}, not {through_launcher:?} ({request})",
            commands_of(request)
        );

        // kubectl cp execs tar: through the launcher too.
        let source = env.cluster.dir.join("cp-source.txt");
        std::fs::write(&source, b"copied\n")?;
        let destination = format!("{namespace}/target:/tmp/copied.txt");
        env.kubectl(&["cp", &source.to_string_lossy(), &destination, "-c", "app"])
            .await?;
        // It checks the destination (`test -d`), then runs `tar`: every
        // exec it makes arrives through the launcher.
        let recorded = kubelet.kubelet_requests();
        let prefix = words(&["/landgate/landgate", "exec", "--"]);
        let copies: Vec<Vec<String>> = recorded[1..].iter().map(|r| commands_of(r)).collect();
        ensure!(
            copies.iter().all(|c| c.starts_with(&prefix))
                && copies.iter().any(|c| c.get(3).is_some_and(|w| w == "tar")),
            "kubectl cp did not reach the node through the launcher: {recorded:?}"
        );

        // kubectl debug: the debug container is wrapped, and an exec into
        // it by absolute path arrives through the launcher like any other.
        let output = env
            .kubectl(&[
                "-n",
                &namespace,
                "debug",
                "target",
                "--image=busybox:1.36",
                "-c",
                "debugger",
                "--",
                "sh",
            ])
            .await?;
        ensure!(
            output.status.success(),
            "kubectl debug failed; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let before_debug = kubelet.kubelet_requests().len();
        env.kubectl(&[
            "-n", &namespace, "exec", "target", "-c", "debugger", "--", "/bin/ls", "/",
        ])
        .await?;
        let recorded = kubelet.kubelet_requests();
        ensure!(
            recorded.len() == before_debug + 1
                && recorded[before_debug]
                    .starts_with(&format!("/exec/{namespace}/target/debugger?"))
                && commands_of(&recorded[before_debug])
                    == words(&["/landgate/landgate", "exec", "--", "/bin/ls", "/"]),
            "an exec into the debug container did not reach the node through the launcher: {recorded:?}"
        );

        // attach reaches the sandboxed main process: admitted unchanged.
        env.kubectl(&["-n", &namespace, "attach", "target", "-c", "app"])
            .await?;
        let recorded = kubelet.kubelet_requests();
        ensure!(
            recorded
                .last()
                .is_some_and(|r| r.starts_with(&format!("/attach/{namespace}/target/app"))),
            "kubectl attach did not reach the node: {recorded:?}"
        );
        let before_plain = recorded.len();

        // A namespace landgate does not serve: as sent.
        exec(plain.clone(), "plain").await?;
        let recorded = kubelet.kubelet_requests();
        ensure!(
            recorded.len() == before_plain + 1 && commands_of(&recorded[before_plain]) == sent,
            "an exec into an unserved namespace was changed: {recorded:?}"
        );

        // deny: refused by landgate, nothing reaches the node.
        annotate_namespace(
            &env.client,
            &namespace,
            json!({"landgate.dev/exec": "deny"}),
        )
        .await?;
        // Until the webhook's namespace cache sees the annotation.
        let refusal = landgate_e2e::eventually(
            "kubectl exec refused under landgate.dev/exec: deny",
            Duration::from_secs(10),
            || async {
                let output = exec(namespace.clone(), "target").await?;
                let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                Ok(stderr.contains("landgate.dev/exec").then_some(stderr))
            },
        )
        .await?;
        ensure!(
            refusal.contains("exec.landgate.dev")
                && refusal.contains("annotation landgate.dev/exec on namespace")
                && refusal.contains("\"deny\""),
            "kubectl exec under landgate.dev/exec: deny was not refused by landgate: {refusal}"
        );
        let output = env
            .kubectl(&["-n", &namespace, "attach", "target", "-c", "app"])
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            stderr.contains("attach into pod") && stderr.contains("\"deny\""),
            "kubectl attach under deny was not refused by landgate: {stderr}"
        );
        let after = kubelet.kubelet_requests();
        ensure!(
            after.len() == before_plain + 1,
            "a refused exec or attach reached the node: {after:?}"
        );
        nodes.delete(NODE, &DeleteParams::default()).await?;
        Ok(())
    });
}

/// The ephemeral container `name` of `pod` as landgate wraps one: `command`
/// behind the launcher, the launcher volume mounted read-only at
/// /landgate, PATH through the wrappers, a policy of its own.
fn check_debug_container_wrapped(pod: &Pod, name: &str, command: &[&str]) -> anyhow::Result<()> {
    let container = pod
        .spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .find(|e| e.name == name)
        .with_context(|| format!("ephemeral container {name} was not stored"))?;
    let mut expected = words(&["/landgate/landgate", "exec", "--"]);
    expected.extend(words(command));
    ensure!(
        container.command.as_deref() == Some(&expected[..]),
        "ephemeral container {name}: command {:?}, expected {expected:?}",
        container.command
    );
    ensure!(
        container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == pods::VOLUME
                && m.mount_path == "/landgate"
                && m.read_only == Some(true)),
        "ephemeral container {name} has no read-only /landgate mount: {:?}",
        container.volume_mounts
    );
    let env = container.env.as_deref().unwrap_or_default();
    ensure!(
        env.iter().any(|e| e.name == "LANDGATE_POLICY")
            && env
                .iter()
                .rfind(|e| e.name == "PATH")
                .and_then(|e| e.value.as_deref())
                .is_some_and(|p| p.starts_with("/landgate/bin")),
        "ephemeral container {name} has no LANDGATE_POLICY or no /landgate/bin on PATH: {env:?}"
    );
    Ok(())
}

/// The `command` values of a kubelet streaming request's query, decoded.
fn commands_of(request: &str) -> Vec<String> {
    let query = request.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("command="))
        .map(percent_decode)
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}
