//! Generated pod and namespace annotations through `Annotations::parse`
//! (model: `annotations`; properties: `props::annotation_case`).
#![no_main]

use landgate_fuzz::annotations::AnnotationsModel;
use landgate_fuzz::{check, dump, props};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|model: AnnotationsModel| {
    let case = model.case();
    dump::save(&case);
    check("annotations", props::annotation_case(&case));
});
