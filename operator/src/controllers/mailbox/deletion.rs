//! What deleting a Mailbox removes: this object's aliases and mailbox row, the maildir, and the
//! domain rows no other Mailbox of the namespace uses.

use std::path::{Component, Path, PathBuf};

use kube::ResourceExt;
use kube::runtime::controller::Action;
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::mailbox::Mailbox;
use mpanel_crds::reasons;

use super::{Context, Error, domain_owner, owner, split};
use crate::controllers::publish;
use crate::providers::mailcore::MailApi;

/// Refuses maildir paths that would leave the root.
fn maildir_path(root: &Path, maildir: &str) -> Option<PathBuf> {
    let relative = Path::new(maildir);
    let plain = relative.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !maildir.is_empty()).then(|| root.join(relative))
}

pub(super) async fn cleanup<M: MailApi>(
    mailbox: &Mailbox,
    mode: ReconcileMode,
    ctx: &Context<M>,
) -> Result<Action, Error> {
    // the object goes, whatever becomes of its rows
    ctx.verified.forget(&mailbox.uid().unwrap_or_default());
    if mailbox.spec.deletion_policy == DeletionPolicy::Orphan || mode == ReconcileMode::ObserveOnly {
        return Ok(Action::await_change());
    }
    let address = mailbox.spec.address.to_ascii_lowercase();
    let (_, domain) = split(&address);
    let owner = owner(mailbox);
    for alias in ctx.mail.aliases(&[], &owner).await? {
        ctx.mail.delete_alias(&alias.address, &owner).await?;
    }
    let row = ctx.mail.mailbox(&address).await?;
    match row {
        Some(r) if r.owner.as_deref() == Some(owner.as_str()) => {
            ctx.mail.delete_mailbox(&address, &owner).await?;
            if let Some(path) = ctx.maildir_root.as_deref().and_then(|root| maildir_path(root, &r.maildir)) {
                match tokio::fs::remove_dir_all(&path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::Maildir { path: path.display().to_string(), message: e.to_string() }),
                }
            }
        }
        Some(_) => {
            let note = format!("mailbox {address} on mail-core is not this object's; it was left there");
            publish(&ctx.recorder, mailbox, true, reasons::NOT_OWNER.name, "DeleteMailbox", note).await;
        }
        None => {}
    }
    let domain_owner = domain_owner(mailbox);
    ctx.mail.delete_domain_if_unused(&domain, &domain_owner).await?;
    for alias in &mailbox.spec.aliases {
        let (_, alias_domain) = split(alias);
        if alias_domain != domain {
            ctx.mail.delete_domain_if_unused(&alias_domain, &domain_owner).await?;
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildirs_never_leave_the_root() {
        let root = Path::new("/var/vmail");
        assert_eq!(maildir_path(root, "example.com/info/"), Some(PathBuf::from("/var/vmail/example.com/info/")));
        assert_eq!(maildir_path(root, "../etc/"), None);
        assert_eq!(maildir_path(root, "/etc/"), None);
        assert_eq!(maildir_path(root, ""), None);
    }
}
