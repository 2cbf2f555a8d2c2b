//! `payments`: a small ledger for the refund example.
//!
//! State lives in `ledger.json` in the directory granted at `/state`. A missing
//! ledger starts with the demo accounts `acct_alice` and `acct_bob`. A change is
//! made under the ledger's lock (`ledger.lock`, created exclusively; calls run in
//! parallel sandboxes and WASI has no `flock`), written to a temporary file of its
//! own, synced and renamed into place, so concurrent refunds all land and a crash
//! mid-call never leaves a torn ledger. A lock whose holder died (its sandbox was
//! stopped) is taken over once it is older than [`STALE_LOCK`]. `issue_refund` is
//! destructive (it moves money) and idempotent per `idempotency_key`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tack_sdk::{Annotations, CallContext, JsonSchema, ToolError, Toolbox};

const LEDGER: &str = "/state/ledger.json";
const LOCK: &str = "/state/ledger.lock";
/// A lock older than this was left by a call that died holding it.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a call waits for the lock before it reports the ledger busy.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The ledger's lock, held while it is read, changed and written; released on
/// drop.
struct Locked;

impl Locked {
    fn take() -> Result<Locked, ToolError> {
        let start = std::time::Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(LOCK)
            {
                Ok(_) => return Ok(Locked),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(LOCK)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        let _ = std::fs::remove_file(LOCK);
                        continue;
                    }
                    if start.elapsed() > LOCK_WAIT {
                        return Err(ToolError::unavailable(
                            "the ledger is busy (another call holds its lock); try again",
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(e) => return Err(ToolError::io("locking the ledger", e)),
            }
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(LOCK);
    }
}

#[derive(Serialize, Deserialize)]
struct Ledger {
    accounts: BTreeMap<String, Account>,
    refunds: Vec<Refund>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Account {
    currency: String,
    balance_cents: i64,
    refundable_cents: i64,
}

/// A refund that was issued.
#[derive(Serialize, Deserialize, Clone, JsonSchema)]
struct Refund {
    /// Refund id, `rf_<n>`.
    refund_id: String,
    /// Account credited.
    account: String,
    /// Amount in cents.
    amount_cents: i64,
    /// Why.
    reason: String,
    /// The caller's idempotency key, if given.
    idempotency_key: Option<String>,
    /// The caller's internal note, if given.
    #[serde(default)]
    note: Option<String>,
    /// The call that issued it (audit).
    call_id: String,
    /// Seconds since the Unix epoch (0 if the wall clock is not granted).
    issued_at: u64,
}

fn demo_ledger() -> Ledger {
    let mut accounts = BTreeMap::new();
    accounts.insert(
        "acct_alice".to_string(),
        Account {
            currency: "USD".into(),
            balance_cents: 12_500,
            refundable_cents: 25_000,
        },
    );
    accounts.insert(
        "acct_bob".to_string(),
        Account {
            currency: "EUR".into(),
            balance_cents: 300,
            refundable_cents: 0,
        },
    );
    Ledger {
        accounts,
        refunds: Vec::new(),
    }
}

fn load() -> Result<Ledger, ToolError> {
    match std::fs::read_to_string(LEDGER) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| ToolError::internal(format!("the ledger {LEDGER} is corrupt: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(demo_ledger()),
        Err(e) => Err(ToolError::io(
            "reading the ledger (is a directory granted at /state?)",
            e,
        )),
    }
}

/// Write `ledger` (under [`Locked`]): a temporary file of this call's own,
/// synced, then renamed over the ledger.
fn save(ledger: &Ledger, _: &Locked, call_id: &str) -> Result<(), ToolError> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(ledger).expect("the ledger serialises");
    let suffix: String = call_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let tmp = format!("/state/.ledger.{suffix}.tmp");
    let write = || {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(ToolError::io("writing the ledger", e));
    }
    std::fs::rename(&tmp, LEDGER).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ToolError::io("replacing the ledger", e)
    })
}

/// Arguments of `read_balance`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct BalanceInput {
    /// Account id, e.g. `acct_alice`.
    account: String,
}

/// An account's balance.
#[derive(Serialize, JsonSchema)]
struct Balance {
    /// Account id.
    account: String,
    /// ISO 4217 currency.
    currency: String,
    /// Balance in cents.
    balance_cents: i64,
    /// How much can still be refunded, in cents.
    refundable_cents: i64,
}

fn read_balance(input: BalanceInput, _: &CallContext) -> Result<Balance, ToolError> {
    let ledger = load()?;
    let acct = account(&ledger, &input.account)?;
    Ok(Balance {
        account: input.account,
        currency: acct.currency.clone(),
        balance_cents: acct.balance_cents,
        refundable_cents: acct.refundable_cents,
    })
}

fn account<'a>(ledger: &'a Ledger, id: &str) -> Result<&'a Account, ToolError> {
    ledger.accounts.get(id).ok_or_else(|| {
        let known: Vec<&str> = ledger.accounts.keys().map(String::as_str).collect();
        ToolError::not_found(format!(
            "no account `{id}`; known accounts: {}",
            known.join(", ")
        ))
    })
}

/// Arguments of `issue_refund`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RefundInput {
    /// Account id to credit.
    account: String,
    /// Amount in cents, at least 1.
    #[schemars(range(min = 1))]
    amount_cents: i64,
    /// Why the refund is issued (shown to approvers).
    reason: String,
    /// Repeating a call with the same key returns the first refund instead of paying twice.
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Internal note kept with the refund for audit (approval policies may hide it).
    #[serde(default)]
    note: Option<String>,
}

/// The refund and the new balance.
#[derive(Serialize, JsonSchema)]
struct RefundOutput {
    /// The refund.
    refund: Refund,
    /// Balance after the refund, in cents.
    balance_cents: i64,
    /// Whether this is a replay of an earlier call with the same idempotency key.
    replayed: bool,
}

fn issue_refund(input: RefundInput, ctx: &CallContext) -> Result<RefundOutput, ToolError> {
    if input.amount_cents < 1 {
        return Err(ToolError::invalid(
            "/amount_cents",
            "the amount must be at least 1 cent",
        ));
    }
    let lock = Locked::take()?;
    let mut ledger = load()?;
    if let Some(key) = &input.idempotency_key
        && let Some(r) = ledger
            .refunds
            .iter()
            .find(|r| r.idempotency_key.as_ref() == Some(key))
    {
        let balance = account(&ledger, &r.account)?.balance_cents;
        return Ok(RefundOutput {
            refund: r.clone(),
            balance_cents: balance,
            replayed: true,
        });
    }
    let acct = account(&ledger, &input.account)?.clone();
    if input.amount_cents > acct.refundable_cents {
        return Err(ToolError::conflict(format!(
            "cannot refund {} cents to {}: only {} cents are refundable",
            input.amount_cents, input.account, acct.refundable_cents
        )));
    }
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let refund = Refund {
        refund_id: format!("rf_{}", ledger.refunds.len() + 1),
        account: input.account.clone(),
        amount_cents: input.amount_cents,
        reason: input.reason,
        idempotency_key: input.idempotency_key,
        note: input.note,
        call_id: ctx.call_id.clone(),
        issued_at,
    };
    let entry = ledger
        .accounts
        .get_mut(&input.account)
        .expect("account checked above");
    entry.balance_cents += input.amount_cents;
    entry.refundable_cents -= input.amount_cents;
    let balance = entry.balance_cents;
    ledger.refunds.push(refund.clone());
    save(&ledger, &lock, &ctx.call_id)?;
    drop(lock);
    tack_sdk::log::info(&format!(
        "refund {} of {} cents to {}",
        refund.refund_id, refund.amount_cents, refund.account
    ));
    Ok(RefundOutput {
        refund,
        balance_cents: balance,
        replayed: false,
    })
}

fn tools() -> Toolbox {
    Toolbox::new()
        .tool(
            "read_balance",
            "Read an account's balance and refundable amount.",
            Annotations::read_only(),
            read_balance,
        )
        .tool(
            "issue_refund",
            "Refund an amount to an account. Moves money: operators gate this tool.",
            Annotations::destructive(),
            issue_refund,
        )
}

tack_sdk::export_tools!(tools());
tack_sdk::manifest!("tack.toml");
