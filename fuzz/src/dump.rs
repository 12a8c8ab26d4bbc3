//! `LANDGATE_FUZZ_DUMP=<dir>`: the structure-aware targets write every case
//! they check to `<dir>/<hash>.json`, the form the regression test replays.
//! Run a target over its (minimised) corpus with it set to turn corpus
//! entries into regression inputs; see `fuzz/README.md`.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Serialize;

fn dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("LANDGATE_FUZZ_DUMP").map(PathBuf::from))
        .as_ref()
}

/// Writes `case` when dumping is on; a no-op (one load) otherwise.
pub fn save<T: Serialize>(case: &T) {
    let Some(dir) = dir() else {
        return;
    };
    let mut json = serde_json::to_vec_pretty(case).expect("cases serialize");
    json.push(b'\n');
    // SipHash with fixed keys: the same case gets the same name every run.
    let mut hasher = DefaultHasher::new();
    json.hash(&mut hasher);
    let path = dir.join(format!("{:016x}.json", hasher.finish()));
    std::fs::create_dir_all(dir).expect("create the dump directory");
    std::fs::write(&path, json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
