//! Generated pods through the mutation engine; then, when the model has
//! edits, the engine's answer changed by later admission plugins through
//! the engine again (reinvocation). Model: `pod`; properties:
//! `props::pod_case`.
#![no_main]

use landgate_fuzz::pod::PodModel;
use landgate_fuzz::{check, dump, props};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|model: PodModel| {
    let case = model.case();
    dump::save(&case);
    let first = check("pod_model", props::pod_case(&case));
    if let Some(later) = first.and_then(|m| model.reinvoked(&case, m.pod)) {
        dump::save(&later);
        check("pod_model (reinvoked)", props::pod_case(&later));
    }
});
