//! What a test does to the fake CA (clock, validity, manual validation and issuance, failures) and what it reads back.

use super::*;

impl FakeAcme {
    /// A prompt CA (challenges valid once answered, orders issued once finalised) issuing leaves
    /// valid for 90 days.
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("a key for the fake CA: {e}"));
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("CA params: {e}"));
        params.distinguished_name.push(DnType::CommonName, "mpanel fake ACME root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let root = params.self_signed(&key).unwrap_or_else(|e| panic!("the fake CA's root: {e}"));
        let state = State {
            orders: BTreeMap::new(),
            next: 0,
            calls: Recorder::default(),
            auto_validate: true,
            auto_issue: true,
            validity: Validity::Days(90),
            clock: None,
            ca_pem: root.pem(),
            issuer: Issuer::new(params, key),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The root certificate (PEM) every issued chain ends with.
    pub fn ca_pem(&self) -> String {
        self.lock().ca_pem.clone()
    }

    /// Dates issuance by `clock` (the controllers' injectable clock) instead of the system's.
    pub fn set_clock(&self, clock: Clock) {
        self.lock().clock = Some(clock);
    }

    /// Leaves issued from now on are valid for `days` from the moment they are issued.
    pub fn set_validity(&self, days: u32) {
        self.lock().validity = Validity::Days(days);
    }

    /// Leaves issued from now on are valid from `not_before` to `not_after` (e.g. one already
    /// close to its end, to test renewal).
    pub fn set_validity_window(&self, not_before: jiff::Timestamp, not_after: jiff::Timestamp) {
        self.lock().validity = Validity::Window(not_before, not_after);
    }

    /// Whether an answered challenge is valid at once (default); else [`Self::validate`] does it.
    pub fn set_auto_validate(&self, on: bool) {
        self.lock().auto_validate = on;
    }

    /// Whether a finalised order is issued at once (default); else it stays processing until
    /// [`Self::issue`].
    pub fn set_auto_issue(&self, on: bool) {
        self.lock().auto_issue = on;
    }

    /// The CA validates the answered challenges of the order at `url` (the order is ready once
    /// all of its authorizations are valid).
    pub fn validate(&self, url: &str) {
        if let Some(order) = self.lock().orders.get_mut(url) {
            order.validate();
        }
    }

    /// The challenge for `name` (`*.example.com` for a wildcard's) fails with `detail`: its
    /// authorization and the order become invalid.
    pub fn fail_challenge(&self, url: &str, name: &str, detail: &str) {
        let (wildcard, bare) = match name.strip_prefix("*.") {
            Some(bare) => (true, bare),
            None => (false, name),
        };
        if let Some(order) = self.lock().orders.get_mut(url) {
            for a in order.authzs.iter_mut().filter(|a| a.name == bare && a.wildcard == wildcard) {
                a.challenge = Status::Invalid;
                a.status = Status::Invalid;
                a.error = Some(detail.to_owned());
            }
            order.public.phase = OrderPhase::Invalid;
        }
    }

    /// The order at `url` becomes invalid with `detail` as its problem.
    pub fn fail_order(&self, url: &str, detail: &str) {
        if let Some(order) = self.lock().orders.get_mut(url) {
            order.public.phase = OrderPhase::Invalid;
            order.public.error = Some(detail.to_owned());
        }
    }

    /// Issues the processing order at `url`.
    pub fn issue(&self, url: &str) -> Result<(), AcmeError> {
        self.lock().issue(url)
    }

    /// The CA forgets the order at `url` (it expired, or the CA restarted).
    pub fn forget_order(&self, url: &str) {
        self.lock().orders.remove(url);
    }

    /// Every order the CA knows, oldest first.
    pub fn orders(&self) -> Vec<FakeOrder> {
        let state = self.lock();
        let mut orders: Vec<(u64, FakeOrder)> = state
            .orders
            .values()
            .map(|o| (o.public.url.rsplit('/').next().and_then(|n| n.parse().ok()).unwrap_or(0), o.public.clone()))
            .collect();
        orders.sort_by_key(|(n, _)| *n);
        orders.into_iter().map(|(_, o)| o).collect()
    }

    /// Every call made, oldest first.
    pub fn calls(&self) -> Vec<AcmeCall> {
        self.lock().calls.log.all()
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: &str) -> usize {
        self.lock().calls.log.count(op)
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        self.lock().calls.log.clear();
    }

    /// The next call of `op` (a trait method's name) fails with the CA's `serverInternal` problem
    /// and `message` verbatim (queued: call again for the one after).
    pub fn fail_next(&self, op: &str, message: &str) {
        self.fail_next_error(op, problem("serverInternal", message));
    }

    /// The next call of `op` is refused as rate-limited (`urn:ietf:params:acme:error:rateLimited`)
    /// with `detail` verbatim.
    pub fn rate_limit_next(&self, op: &str, detail: &str) {
        self.fail_next_error(op, problem("rateLimited", detail));
    }

    /// The next call of `op` fails with `error` (e.g. `AcmeError::Unreachable`).
    pub fn fail_next_error(&self, op: &str, error: AcmeError) {
        self.lock().calls.failures.push(op, error);
    }
}
