//! The tests' side of the Namesilo double: accounts of their own, calls to its API, and its
//! control routes (request log, balance, domains as the registrar holds them, names registered
//! elsewhere).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Testbed;

/// The testbed's Namesilo double.
#[derive(Clone)]
pub struct Namesilo {
    http: reqwest::Client,
    api_url: String,
    ctl_url: String,
    key: String,
}

/// One API call as the double logged it (without the key).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LoggedRequest {
    pub seq: u64,
    pub operation: String,
    pub params: BTreeMap<String, String>,
    pub code: u16,
}

/// An account of the double: an API key with its own balance, domains and request log.
#[derive(Clone)]
pub struct Account {
    namesilo: Namesilo,
    key: String,
}

impl Namesilo {
    /// From the testbed's `NAMESILO_URL`, `NAMESILO_KEY` and `NAMESILO_CTL_URL`.
    pub fn from_testbed(testbed: &Testbed) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Self {
            http,
            api_url: testbed.get("NAMESILO_URL")?.trim_end_matches('/').to_owned(),
            ctl_url: testbed.get("NAMESILO_CTL_URL")?.trim_end_matches('/').to_owned(),
            key: testbed.get("NAMESILO_KEY")?.to_owned(),
        })
    }

    /// The API's base URL (`…/api`), as the operator is configured with it.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The account the testbed started the double with.
    pub fn testbed_account(&self) -> Account {
        self.account(&self.key)
    }

    /// Calls made with `key`, which need not name an account.
    pub fn account(&self, key: &str) -> Account {
        Account { namesilo: self.clone(), key: key.to_owned() }
    }

    /// A new account with a random key and `balance` (dollars, e.g. `"25.00"`).
    pub async fn new_account(&self, balance: &str) -> anyhow::Result<Account> {
        let key = random_key();
        self.ctl(reqwest::Method::POST, "/accounts", Some(json!({"key": key, "balance": balance}))).await?;
        Ok(Account { namesilo: self.clone(), key })
    }

    /// Registers `domain` at "another registrar": taken for registration, open to a transfer with
    /// `auth_code`. `expires` is `YYYY-MM-DD`.
    pub async fn registry_add(
        &self,
        domain: &str,
        auth_code: &str,
        expires: &str,
        nameservers: &[&str],
    ) -> anyhow::Result<()> {
        let body = json!({"domain": domain, "authCode": auth_code, "expires": expires, "nameservers": nameservers});
        self.ctl(reqwest::Method::POST, "/registry", Some(body)).await.map(drop)
    }

    /// A control call; `None` for 404, an error for any other failure.
    async fn ctl_optional(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Option<Value>> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.ctl_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} /_ctl{path}"))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} /_ctl{path}: {status} {text}");
        }
        Ok(Some(serde_json::from_str(&text).with_context(|| format!("{method} /_ctl{path} answered {text}"))?))
    }

    async fn ctl(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let what = format!("{method} /_ctl{path}");
        self.ctl_optional(method, path, body).await?.with_context(|| format!("{what}: 404"))
    }
}

impl Account {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Calls `operation` with `params` as the operator does (`version=1&type=json&key=…`) and
    /// returns the answer's `reply`.
    pub async fn call(&self, operation: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let envelope = [("version", "1"), ("type", "json"), ("key", self.key.as_str())];
        let url = reqwest::Url::parse_with_params(
            &format!("{}/{operation}", self.namesilo.api_url),
            envelope.iter().chain(params),
        )?;
        let answer: Value = self
            .namesilo
            .http
            .get(url)
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .with_context(|| format!("calling {operation}"))?
            .json()
            .await
            .with_context(|| format!("reading the answer to {operation}"))?;
        answer.get("reply").cloned().with_context(|| format!("{operation} answered without a reply: {answer}"))
    }

    /// Every API call made with this account's key, oldest first.
    pub async fn requests(&self) -> anyhow::Result<Vec<LoggedRequest>> {
        let log = self.namesilo.ctl(reqwest::Method::GET, &format!("/accounts/{}/requests", self.key), None).await?;
        Ok(serde_json::from_value(log)?)
    }

    /// How many `operation` calls named `domain`.
    pub async fn count(&self, operation: &str, domain: &str) -> anyhow::Result<usize> {
        let requests = self.requests().await?;
        Ok(requests
            .iter()
            .filter(|r| {
                r.operation == operation && r.params.get("domain").is_some_and(|d| d.eq_ignore_ascii_case(domain))
            })
            .count())
    }

    /// The balance, as a plain decimal (`"989.05"`).
    pub async fn balance(&self) -> anyhow::Result<String> {
        let account = self.namesilo.ctl(reqwest::Method::GET, &format!("/accounts/{}", self.key), None).await?;
        account["balance"].as_str().map(str::to_owned).with_context(|| format!("no balance in {account}"))
    }

    pub async fn set_balance(&self, balance: &str) -> anyhow::Result<()> {
        let path = format!("/accounts/{}/balance", self.key);
        self.namesilo.ctl(reqwest::Method::PUT, &path, Some(json!({"balance": balance}))).await.map(drop)
    }

    /// The domain as the registrar holds it (`created`, `expires`, `locked`, `private`,
    /// `autoRenew`, `nameservers`), when it is in this account.
    pub async fn domain(&self, name: &str) -> anyhow::Result<Option<Value>> {
        self.namesilo.ctl_optional(reqwest::Method::GET, &format!("/accounts/{}/domains/{name}", self.key), None).await
    }

    /// Changes the domain behind the API's back (drift), with any of `nameservers`, `locked`,
    /// `private`, `autoRenew`, `expires`; returns the domain as it is then.
    pub async fn edit_domain(&self, name: &str, edit: Value) -> anyhow::Result<Value> {
        let path = format!("/accounts/{}/domains/{name}", self.key);
        self.namesilo.ctl(reqwest::Method::PATCH, &path, Some(edit)).await
    }
}

fn random_key() -> String {
    // RandomState is seeded from the OS for each instance
    let a = RandomState::new().hash_one(std::process::id());
    let b = RandomState::new().hash_one(std::time::SystemTime::now());
    format!("test{a:016x}{b:016x}")
}
