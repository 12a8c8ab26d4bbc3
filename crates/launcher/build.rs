//! Link flags for the `landgate` binary only.

fn main() {
    // No build-id note: the binary ships stripped, so nothing symbolises
    // it by build-id, and the note (with its program header) is what keeps
    // the first segment from fitting one page fewer.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=landgate=-Wl,--build-id=none");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
