//! Who may act for a name: the name index must grant this Domain's claim, only the first Domain of
//! a namespace for a name acts, and a registration already in the account is managed only by the
//! Domain that ordered it or that staff let adopt it.

use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use mpanel_crds::domain::{ADOPT_REGISTRATION_ANNOTATION, Adoption, Domain, OrderOperation, OrderState};

use super::{Context, Error};
use crate::controllers::During;
use crate::names::Claim;

/// The Domain of the same namespace that claimed the same name first, if it is not this one: only
/// one Domain acts for a name. (Other namespaces' claims are the name index's business.)
pub(super) fn earlier_claim(domain: &Domain, store: &Store<Domain>) -> Option<String> {
    let key = |d: &Domain| Claim::of_domain(d).precedence;
    store
        .state()
        .iter()
        .filter(|d| d.uid() != domain.uid() && d.namespace() == domain.namespace())
        .filter(|d| d.spec.name == domain.spec.name && d.meta().deletion_timestamp.is_none())
        .filter(|d| key(d) < key(domain))
        .map(|d| d.name_any())
        .min()
}

/// Whether this Domain may act on its name, as the name index decides ([`NameIndex::may_act`]).
///
/// [`NameIndex::may_act`]: crate::names::NameIndex::may_act
pub(super) async fn name_granted<R>(domain: &Domain, ctx: &Context<R>) -> Result<bool, Error> {
    let may_act = ctx.names.may_act(&ctx.client, Claim::of_domain(domain)).await;
    Ok(may_act.during("listing DnsZones and Domains for the name claim")?)
}

/// Why this Domain may manage the registration under its name that is in the account, if it may:
/// recorded before, its own order on record (a `Sent` one included: the operator may have died
/// before recording the answer), or the adoption annotation staff set.
pub(super) fn adoption(domain: &Domain) -> Option<Adoption> {
    let status = domain.status.as_ref();
    if let Some(adopted) = status.and_then(|s| s.adopted) {
        return Some(adopted);
    }
    let ordered = status.and_then(|s| s.last_order.as_ref()).is_some_and(|o| match o.operation {
        OrderOperation::Register | OrderOperation::Transfer => o.state != OrderState::Failed,
        OrderOperation::Renew => o.state == OrderState::Succeeded,
    });
    if ordered {
        return Some(Adoption::Ordered);
    }
    let granted = domain.annotations().get(ADOPT_REGISTRATION_ANNOTATION).is_some_and(|v| v == "true");
    granted.then_some(Adoption::Granted)
}
