//! What a resolved image says, for each shape of image config and index.

use landgate_e2e::registry::ImageSpec;
use landgate_engine::image::{ImageConfig, ImageLookup, LookupFailure};
use landgate_registry::Platform;

use crate::support::{args, config, failed, registry, resolve, resolved, resolver, spec};

#[tokio::test]
async fn entrypoint_and_cmd() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    let digest = registry
        .push_image(
            "app",
            "1",
            &spec(Some(&["/bin/app"]), Some(&["--serve", "8080"])),
        )
        .await
        .unwrap();
    let resolver = resolver(config(registry));
    let config = resolved(resolve(&resolver, &format!("{}/app:1", registry.host()), &[]).await);
    assert_eq!(
        config,
        ImageConfig {
            digest,
            entrypoint: args(&["/bin/app"]),
            cmd: args(&["--serve", "8080"]),
            path: None,
            working_dir: None,
            user: None,
            platform_disagreement: None,
        }
    );
}

#[tokio::test]
async fn cmd_only_entrypoint_only_and_neither() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    registry
        .push_image("cmd", "1", &spec(None, Some(&["sh", "-c", "echo hi"])))
        .await
        .unwrap();
    registry
        .push_image("entrypoint", "1", &spec(Some(&["/entry"]), None))
        .await
        .unwrap();
    registry
        .push_image("neither", "1", &spec(None, None))
        .await
        .unwrap();
    let resolver = resolver(config(registry));
    let host = registry.host();

    let cmd = resolved(resolve(&resolver, &format!("{host}/cmd:1"), &[]).await);
    assert_eq!(
        (cmd.entrypoint, cmd.cmd),
        (vec![], args(&["sh", "-c", "echo hi"]))
    );

    let entrypoint = resolved(resolve(&resolver, &format!("{host}/entrypoint:1"), &[]).await);
    assert_eq!(
        (entrypoint.entrypoint, entrypoint.cmd),
        (args(&["/entry"]), vec![])
    );

    // Resolved all the same: refusing it is the engine's call.
    let neither = resolved(resolve(&resolver, &format!("{host}/neither:1"), &[]).await);
    assert_eq!((neither.entrypoint, neither.cmd), (vec![], vec![]));
}

#[tokio::test]
async fn path_working_dir_and_user() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    let image = ImageSpec {
        cmd: Some(args(&["serve"])),
        env: args(&[
            "PATH=/first",
            "HOME=/home/app",
            "PATH=/opt/app/bin:/usr/bin",
        ]),
        working_dir: Some("/srv".into()),
        user: Some("1000:1000".into()),
        ..ImageSpec::default()
    };
    registry.push_image("custom", "v2", &image).await.unwrap();
    let resolver = resolver(config(registry));
    let config = resolved(resolve(&resolver, &format!("{}/custom:v2", registry.host()), &[]).await);
    assert_eq!(config.path.as_deref(), Some("/opt/app/bin:/usr/bin"));
    assert_eq!(config.working_dir.as_deref(), Some("/srv"));
    assert_eq!(config.user.as_deref(), Some("1000:1000"));
}

fn at(architecture: &str, variant: Option<&str>, entrypoint: &[&str]) -> ImageSpec {
    ImageSpec {
        entrypoint: Some(args(entrypoint)),
        cmd: Some(args(&["run"])),
        env: args(&["PATH=/usr/bin:/bin"]),
        // Marks which platform's config was used; User is not compared
        // across platforms (WorkingDir is).
        user: Some(architecture.to_owned()),
        architecture: architecture.into(),
        variant: variant.map(str::to_owned),
        ..ImageSpec::default()
    }
}

#[tokio::test]
async fn an_index_whose_platforms_agree() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    // An attestation manifest (unknown/unknown) that would disagree if it
    // were taken for a platform.
    let attestation = ImageSpec {
        os: "unknown".into(),
        architecture: "unknown".into(),
        ..at("unknown", None, &["/not-a-program"])
    };
    let digest = registry
        .push_index(
            "multi",
            "1",
            &[
                at("amd64", None, &["/app"]),
                at("arm64", Some("v8"), &["/app"]),
                attestation,
            ],
        )
        .await
        .unwrap();
    let mut settings = config(registry);
    settings.platform = "linux/arm64".parse::<Platform>().unwrap();
    let resolver = resolver(settings);
    let config = resolved(resolve(&resolver, &format!("{}/multi:1", registry.host()), &[]).await);
    assert_eq!(config.digest, digest, "the index digest");
    assert_eq!(config.entrypoint, args(&["/app"]));
    assert_eq!(config.platform_disagreement, None);
    assert_eq!(
        config.user.as_deref(),
        Some("arm64"),
        "the --platform config"
    );
}

#[tokio::test]
async fn an_index_whose_platforms_disagree() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    let digest = registry
        .push_index(
            "split",
            "1",
            &[
                at("arm64", Some("v8"), &["/arm-app"]),
                at("amd64", None, &["/app"]),
            ],
        )
        .await
        .unwrap();
    let resolver = resolver(config(registry));
    let config = resolved(resolve(&resolver, &format!("{}/split:1", registry.host()), &[]).await);
    assert_eq!(config.digest, digest, "the index digest");
    assert_eq!(config.entrypoint, args(&["/app"]), "linux/amd64's");
    assert_eq!(config.user.as_deref(), Some("amd64"));
    let disagreement = config.platform_disagreement.unwrap();
    assert!(
        disagreement.contains("the config of linux/amd64 (--platform) was used")
            && disagreement
                .contains(r#"linux/arm64/v8 has Entrypoint ["/arm-app"] (not ["/app"])"#),
        "{disagreement}"
    );
}

#[tokio::test]
async fn the_platform_absent_from_a_disagreeing_index() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    registry
        .push_index(
            "elsewhere",
            "1",
            &[at("arm64", None, &["/a"]), at("s390x", None, &["/b"])],
        )
        .await
        .unwrap();
    let resolver = resolver(config(registry));
    let image = format!("{}/elsewhere:1", registry.host());
    let (cause, message) = failed(resolve(&resolver, &image, &[]).await);
    assert_eq!(cause, LookupFailure::Invalid, "{message}");
    assert!(message.contains(&image), "{message}");
    assert!(
        message.contains("no linux/amd64 (--platform)")
            && message.contains("linux/arm64/v8, linux/s390x"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_tags_and_repositories_are_not_found() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    registry
        .push_image("app", "1", &spec(Some(&["/a"]), None))
        .await
        .unwrap();
    let resolver = resolver(config(registry));
    for image in [
        format!("{}/app:2", registry.host()),
        format!("{}/nothing-here:1", registry.host()),
    ] {
        let (cause, message) = failed(resolve(&resolver, &image, &[]).await);
        assert_eq!(cause, LookupFailure::NotFound, "{message}");
        assert!(
            message.contains(&image) && message.contains(registry.host()),
            "{message}"
        );
    }
}

#[tokio::test]
async fn digest_pinned_references() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    let digest = registry
        .push_image("pinned", "1", &spec(Some(&["/a"]), None))
        .await
        .unwrap();
    let host = registry.host();
    let resolver = resolver(config(registry));
    for image in [
        format!("{host}/pinned@{digest}"),
        format!("{host}/pinned:1@{digest}"),
        // The tag is ignored when pinned: this one does not exist.
        format!("{host}/pinned:no-such-tag@{digest}"),
    ] {
        let config = resolved(resolve(&resolver, &image, &[]).await);
        assert_eq!(config.digest, digest, "{image}");
        assert_eq!(config.entrypoint, args(&["/a"]));
    }
    let absent = format!("sha256:{}", "0".repeat(64));
    let (cause, message) =
        failed(resolve(&resolver, &format!("{host}/pinned@{absent}"), &[]).await);
    assert_eq!(cause, LookupFailure::NotFound, "{message}");
}

#[tokio::test]
async fn every_image_asked_for_is_answered() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    registry
        .push_image("app", "1", &spec(None, Some(&["x"])))
        .await
        .unwrap();
    let resolver = resolver(config(registry));
    let host = registry.host();
    let images = vec![
        format!("{host}/app:1"),
        format!("{host}/app:missing"),
        "Not A Reference".to_owned(),
        format!("{host}/app:1"),
    ];
    let answers = resolver.resolve(&images, &[]).await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(matches!(answers[&images[0]], ImageLookup::Resolved(_)));
    let (cause, _) = failed(answers[&images[1]].clone());
    assert_eq!(cause, LookupFailure::NotFound);
    let (cause, message) = failed(answers[&images[2]].clone());
    assert_eq!(cause, LookupFailure::Invalid);
    assert!(message.contains("Not A Reference"), "{message}");
}
