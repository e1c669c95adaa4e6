//! Properties every kind's CRD must have, and the committed manifests being current.

use mpanel_crds::{CATEGORY, GROUP, VERSION, crds, generated, manifests};

#[test]
fn committed_manifests_match_the_types() {
    let mut files = manifests::files_in(&manifests::crds_chart_templates(), true).expect("rendering");
    for dir in manifests::committed_dirs() {
        files.extend(manifests::files_in(&dir, false).expect("rendering"));
    }
    let drifted = generated::out_of_date(&files);
    assert!(drifted.is_empty(), "regenerate with `cargo run -p mpanel-crds --bin crdgen`; out of date: {drifted:?}");
}

#[test]
fn every_kind_is_namespaced_in_the_mpanel_category_with_status_and_ready_column() {
    let all = crds();
    assert_eq!(all.len(), 8);
    for crd in all {
        let kind = &crd.spec.names.kind;
        assert_eq!(crd.spec.group, GROUP, "{kind}");
        assert_eq!(crd.spec.scope, "Namespaced", "{kind}");
        assert_eq!(crd.spec.names.categories.as_deref(), Some(&[CATEGORY.to_owned()][..]), "{kind}");
        assert_eq!(crd.spec.names.short_names.as_ref().map(Vec::len), Some(1), "{kind} has one short name");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, VERSION);
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{kind} has a status subresource"
        );
        let columns: Vec<&str> = version.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
        for wanted in ["Phase", "Ready", "Age"] {
            assert!(columns.contains(&wanted), "{kind} lacks the {wanted} column: {columns:?}");
        }
    }
}
