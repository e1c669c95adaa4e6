//! [`AcmeApi`] over the fake CA: new orders, polling, answering challenges, finalising, downloading.

use super::*;

impl AcmeApi for FakeAcme {
    async fn new_order(&self, dns_names: &[String]) -> Result<OrderView, AcmeError> {
        let mut state = self.lock();
        state.record("new_order", &dns_names.join(","))?;
        if dns_names.is_empty() {
            return Err(problem("malformed", "NewOrder request did not specify any identifiers"));
        }
        state.next += 1;
        let n = state.next;
        let url = format!("{BASE}/order/{n}");
        let authzs = dns_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (wildcard, bare) = match name.strip_prefix("*.") {
                    Some(bare) => (true, bare),
                    None => (false, name.as_str()),
                };
                Authz {
                    name: bare.to_owned(),
                    wildcard,
                    status: Status::Pending,
                    challenge_url: format!("{BASE}/chall/{n}/{i}"),
                    txt_value: format!("fake-dns01-{n}-{i}-{}", bare.replace('.', "-")),
                    challenge: Status::Pending,
                    error: None,
                }
            })
            .collect();
        let public = FakeOrder {
            url: url.clone(),
            names: dns_names.to_vec(),
            phase: OrderPhase::Pending,
            error: None,
            answered: Vec::new(),
            csr_names: None,
            chain: None,
        };
        let order = Order { public, authzs, csr: None };
        let view = order.view();
        state.orders.insert(url, order);
        Ok(view)
    }

    async fn order(&self, url: &str) -> Result<OrderView, AcmeError> {
        let mut state = self.lock();
        state.record("order", url)?;
        Ok(state.order(url)?.view())
    }

    async fn phase(&self, url: &str) -> Result<OrderPhase, AcmeError> {
        let mut state = self.lock();
        state.record("phase", url)?;
        Ok(state.order(url)?.public.phase)
    }

    async fn answer(&self, order_url: &str, challenge_url: &str) -> Result<(), AcmeError> {
        let mut state = self.lock();
        state.record("answer", order_url)?;
        let auto = state.auto_validate;
        let order = state.order(order_url)?;
        let Some(authz) = order.authzs.iter_mut().find(|a| a.challenge_url == challenge_url) else {
            return Err(AcmeError::BadResponse(format!("order {order_url} has no challenge {challenge_url}")));
        };
        if authz.challenge == Status::Pending {
            authz.challenge = Status::Processing;
        }
        order.public.answered.push(challenge_url.to_owned());
        if auto {
            order.validate();
        }
        Ok(())
    }

    async fn finalize(&self, order_url: &str, csr_der: &[u8]) -> Result<(), AcmeError> {
        let mut state = self.lock();
        state.record("finalize", order_url)?;
        let auto = state.auto_issue;
        let order = state.order(order_url)?;
        if order.public.phase != OrderPhase::Ready {
            let status = format!("{:?}", order.public.phase).to_ascii_lowercase();
            return Err(problem(
                "orderNotReady",
                format!("Order's status (\"{status}\") is not acceptable for finalization"),
            ));
        }
        let csr = parse_csr(csr_der)?;
        let asked: BTreeSet<String> = csr.names.iter().cloned().collect();
        let ordered: BTreeSet<String> = order.public.names.iter().map(|n| n.to_ascii_lowercase()).collect();
        if asked != ordered {
            return Err(problem("badCSR", "CSR does not specify same identifiers as Order"));
        }
        order.public.csr_names = Some(csr.names.clone());
        order.csr = Some(csr);
        order.public.phase = OrderPhase::Processing;
        if auto {
            state.issue(order_url)?;
        }
        Ok(())
    }

    async fn certificate(&self, order_url: &str) -> Result<String, AcmeError> {
        let mut state = self.lock();
        state.record("certificate", order_url)?;
        let order = state.order(order_url)?;
        match (&order.public.chain, order.public.phase) {
            (Some(chain), OrderPhase::Valid) => Ok(chain.clone()),
            _ => Err(AcmeError::BadResponse(format!("order {order_url} has no certificate yet"))),
        }
    }
}
