//! Cloud-init user data of a QEMU CloudPod: read from the Secret of `cloudInitSecretRef` and
//! written as a snippet into the snippet storage the operator has mounted; the guest's `cicustom`
//! names it. Proxmox's API cannot take the file (its upload accepts `iso`, `vztmpl` and `import`
//! content only), and `cicustom` is the only way Proxmox passes custom user data to cloud-init.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use mpanel_crds::cloudpod::CloudPod;
use mpanel_crds::reasons;

use crate::config::SnippetStorage;
use crate::controllers::During;

/// Why the user data could not be given to the guest.
#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    #[error("Secret {name:?} has no text under key {key:?} for the cloud-init user data")]
    SecretMissing { name: String, key: String },
    #[error("cloudInitSecretRef needs a snippet storage, and the operator configuration has no proxmox.snippets")]
    NoSnippetStorage,
    #[error("the user data snippet {path} could not be written: {error}")]
    Write { path: String, error: std::io::Error },
    #[error(transparent)]
    Kube(#[from] crate::controllers::KubeCall),
}

impl UserDataError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretMissing { .. } => reasons::USER_DATA_SECRET_MISSING.name,
            Self::NoSnippetStorage | Self::Write { .. } => reasons::USER_DATA_NOT_WRITTEN.name,
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
        }
    }
}

/// The snippet's file name: one per CloudPod.
pub fn file_name(uid: &str) -> String {
    format!("mpanel-cloudpod-{uid}-user.yaml")
}

/// Writes the user data of `pod`'s `cloudInitSecretRef` (when it has one) as its snippet, unless
/// the file already holds it; the `cicustom` volume (`<storage>:snippets/<file>`) to name.
pub async fn snippet(
    client: &Client,
    pod: &CloudPod,
    snippets: Option<&SnippetStorage>,
) -> Result<Option<String>, UserDataError> {
    let Some(selector) = &pod.spec.cloud_init_secret_ref else { return Ok(None) };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let missing = || UserDataError::SecretMissing { name: selector.name.clone(), key: selector.key.clone() };
    let secret = secrets
        .get_opt(&selector.name)
        .await
        .during(format!("reading Secret {}", selector.name))?
        .ok_or_else(missing)?;
    let bytes = secret.data.as_ref().and_then(|d| d.get(&selector.key)).ok_or_else(missing)?;
    let text = std::str::from_utf8(&bytes.0).map_err(|_| missing())?;
    let storage = snippets.ok_or(UserDataError::NoSnippetStorage)?;
    let name = file_name(&pod.uid().unwrap_or_default());
    write_if_changed(&storage.directory.join("snippets").join(&name), text)?;
    Ok(Some(format!("{}:snippets/{name}", storage.storage)))
}

/// Writes `text` to `path` through a temporary file (Proxmox never reads half a file), unless the
/// file holds it already.
fn write_if_changed(path: &Path, text: &str) -> Result<(), UserDataError> {
    let failed = |error| UserDataError::Write { path: path.display().to_string(), error };
    if std::fs::read(path).is_ok_and(|have| have == text.as_bytes()) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let temporary = path.with_extension("yaml.tmp");
    std::fs::write(&temporary, text).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// Removes the snippet of the CloudPod `uid`, if there is one.
pub fn remove(snippets: Option<&SnippetStorage>, uid: &str) {
    if let Some(storage) = snippets {
        let path = storage.directory.join("snippets").join(file_name(uid));
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "the user data snippet could not be removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snippet_is_written_whole_and_rewritten_only_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("mpanel-snippet-test-{}", std::process::id()));
        let path = dir.join("snippets").join(file_name("u1"));
        write_if_changed(&path, "#cloud-config\npackages: [nginx]\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "#cloud-config\npackages: [nginx]\n");
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        write_if_changed(&path, "#cloud-config\npackages: [nginx]\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), written, "unchanged: not rewritten");
        write_if_changed(&path, "#cloud-config\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "#cloud-config\n");
        let storage = SnippetStorage { storage: "cephfs".into(), directory: dir.clone() };
        remove(Some(&storage), "u1");
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
