//! Provisioning: the challenge answer, the create body with its proof-of-work
//! solution, and the created account.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::Value;

use super::{result_of, DEFAULT_ACCOUNT_LIFETIME_SECS};
use crate::economics::pow::{
    check_difficulty, decode_checkpoint, verify_and_trim, Challenge, ChallengeBook, IssuedTo,
    PowError, PowPolicy, Redeemed,
};
use crate::wire::rfc3339_to_unix;

/// base64url, padding optional (the platform sends it unpadded; be lenient on input).
const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn get_u32(v: &Value, field: &str) -> Result<u32, PowError> {
    v.get(field)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| PowError::Malformed(format!("challenge has no valid \"{field}\"")))
}

/// Parses a challenge answer (the envelope or its `result`).
pub fn parse_challenge(json: &[u8]) -> Result<Challenge, PowError> {
    let v: Value = serde_json::from_slice(json)
        .map_err(|e| PowError::Malformed(format!("challenge is not JSON: {e}")))?;
    let r = result_of(&v);
    let field = |name: &str| {
        r.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| PowError::Malformed(format!("challenge has no \"{name}\"")))
    };
    let token = field("challengeToken")?;
    let seed = field("seed")?;
    Ok(Challenge {
        challenge_token: token.to_string(),
        seed: decode_seed(seed)?,
        k: get_u32(r, "k")?,
        g: get_u32(r, "g")?,
    })
}

/// Decodes a base64url seed (padding optional).
pub fn decode_seed(seed: &str) -> Result<Vec<u8>, PowError> {
    URL_LENIENT
        .decode(seed.trim())
        .map_err(|e| PowError::Malformed(format!("seed is not base64url: {e}")))
}

/// Rewrites the `k` of a challenge answer (the envelope or its `result`) to `k_prime`,
/// keeping every other field. Refuses `k_prime < k` and `k_prime * g` above wrangler's
/// cap (wrangler would refuse the challenge, so the deploy would fail).
pub fn rewrite_challenge(json: &[u8], k_prime: u32) -> Result<Vec<u8>, PowError> {
    let mut v: Value = serde_json::from_slice(json)
        .map_err(|e| PowError::Malformed(format!("challenge is not JSON: {e}")))?;
    let is_envelope = v.get("result").is_some_and(Value::is_object);
    let r = if is_envelope { v.get_mut("result") } else { Some(&mut v) };
    let r = r.ok_or_else(|| PowError::Malformed("challenge has no result".into()))?;
    let k = get_u32(r, "k")?;
    let g = get_u32(r, "g")?;
    check_difficulty(k, k_prime, g)?;
    let obj = r
        .as_object_mut()
        .ok_or_else(|| PowError::Malformed("challenge result is not an object".into()))?;
    obj.insert("k".into(), Value::from(k_prime));
    serde_json::to_vec(&v).map_err(|e| PowError::Malformed(e.to_string()))
}

/// The body of `POST .../provisioning/previews`: `{challengeToken, solution:
/// {checkpoints}, ...}`. Everything but the checkpoints is forwarded as sent.
pub struct CreateBody {
    value: Value,
}

impl fmt::Debug for CreateBody {
    /// The body is left out: its challenge token is the handle to a solution in flight.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateBody").finish_non_exhaustive()
    }
}

impl CreateBody {
    /// Parses the body; it must be JSON.
    pub fn parse(body: &[u8]) -> Result<CreateBody, PowError> {
        let value = serde_json::from_slice(body)
            .map_err(|e| PowError::Malformed(format!("request body is not JSON: {e}")))?;
        Ok(CreateBody { value })
    }

    /// The challenge the solution answers, if the body names one.
    pub fn challenge_token(&self) -> Option<&str> {
        self.value.get("challengeToken").and_then(Value::as_str)
    }

    /// The checkpoints as per-digest strings, and whether the client sent them in
    /// wrangler's one-string form (every digest back to back, standard base64) rather
    /// than as a list; answer in the form the client used.
    pub fn checkpoints(&self) -> Result<(Vec<String>, bool), PowError> {
        let raw = self
            .value
            .get("solution")
            .and_then(|s| s.get("checkpoints"))
            .ok_or_else(|| PowError::Malformed("no solution.checkpoints".into()))?;
        match raw {
            Value::String(joined) => Ok((split_concatenated(joined)?, true)),
            Value::Array(items) => Ok((
                items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        c.as_str().map(str::to_string).ok_or(PowError::BadCheckpoint { index: i })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                false,
            )),
            _ => Err(PowError::Malformed(
                "solution.checkpoints is neither a string nor a list".into(),
            )),
        }
    }

    /// The body to forward, with `checkpoints` in place of the client's (joined into
    /// one string when `concatenated`).
    pub fn with_checkpoints(
        mut self,
        checkpoints: &[String],
        concatenated: bool,
    ) -> Result<Vec<u8>, PowError> {
        let forwarded = if concatenated {
            Value::from(join_concatenated(checkpoints)?)
        } else {
            Value::from(checkpoints.to_vec())
        };
        if let Some(sol) = self.value.get_mut("solution").and_then(Value::as_object_mut) {
            sol.insert("checkpoints".into(), forwarded);
        }
        serde_json::to_vec(&self.value).map_err(|e| PowError::Malformed(e.to_string()))
    }
}

/// Splits wrangler's one-string form into per-digest strings.
fn split_concatenated(joined: &str) -> Result<Vec<String>, PowError> {
    let bytes = STANDARD
        .decode(joined.trim())
        .map_err(|_| PowError::Malformed("solution.checkpoints is not base64".into()))?;
    if bytes.is_empty() || bytes.len() % 32 != 0 {
        return Err(PowError::Malformed(format!(
            "solution.checkpoints holds {} bytes, not a whole number of 32-byte digests",
            bytes.len()
        )));
    }
    Ok(bytes.chunks(32).map(|c| STANDARD.encode(c)).collect())
}

/// The inverse of [`split_concatenated`].
fn join_concatenated(checkpoints: &[String]) -> Result<String, PowError> {
    let mut bytes = Vec::with_capacity(checkpoints.len() * 32);
    for (i, c) in checkpoints.iter().enumerate() {
        bytes.extend_from_slice(&decode_checkpoint(c, i)?);
    }
    Ok(STANDARD.encode(bytes))
}

/// A temporary account from the platform's 2xx answer to `POST .../previews`.
///
/// `api_token` is a secret: whoever holds it owns the account. Hash it at once (with
/// [`crate::accounts::TokenHasher`]), drop this value, and never log it; `Debug`
/// prints it redacted for that reason.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedAccount {
    /// `result.account.id`.
    pub id: String,
    /// `result.account.apiToken`: secret, see the type's docs.
    pub api_token: String,
    /// `result.account.expiresAt` as unix seconds, when present and valid RFC 3339.
    pub expires_at: Option<u64>,
}

impl fmt::Debug for CreatedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedAccount")
            .field("id", &self.id)
            .field("api_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl CreatedAccount {
    /// Reads `result.account.{id, apiToken, expiresAt}`; `None` without an id or token.
    pub fn parse(answer: &[u8]) -> Option<CreatedAccount> {
        let v: Value = serde_json::from_slice(answer).ok()?;
        let account = v.get("result")?.get("account")?;
        Some(CreatedAccount {
            id: account.get("id")?.as_str()?.to_string(),
            api_token: account.get("apiToken")?.as_str()?.to_string(),
            expires_at: account.get("expiresAt").and_then(Value::as_str).and_then(rfc3339_to_unix),
        })
    }

    /// Expiry in unix seconds, or `now` plus [`DEFAULT_ACCOUNT_LIFETIME_SECS`] when the
    /// platform did not say.
    pub fn expires_at_or(&self, now: u64) -> u64 {
        self.expires_at.unwrap_or(now + DEFAULT_ACCOUNT_LIFETIME_SECS)
    }
}

/// Who redeems a challenge: its compact source keys and the unclaimed-cleanup debt
/// its harder proof-of-work is computed from (0 when it owes none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redeemer {
    /// The redeeming source.
    pub issued_to: IssuedTo,
    /// Its debt as the budget check found it.
    pub debt: u64,
}

/// The gateway's side of `POST .../provisioning/previews`.
///
/// The challenge is redeemed in the book (burned, whatever follows). It must be
/// solved at the stricter of what its fetcher was asked and what the redeemer owes
/// (the fetcher's `k'` alone when they are the same source: the client cannot know
/// more than it was told); the extra work is verified and the body to forward keeps
/// only the platform's `k+1` checkpoints (`Ok(Some((body, hashes)))`). `Ok(None)`:
/// forward the body untouched, because no extra work is due, or the token is unknown
/// to the gateway and the redeemer owes nothing (the platform checks its own work).
/// A burned token, and an unknown one from a redeemer in debt, are refused.
pub fn trim_create_body<R: rand::Rng + ?Sized>(
    body: &[u8],
    book: &ChallengeBook,
    now: u64,
    pow: &PowPolicy,
    redeemer: Redeemer,
    rng: &mut R,
) -> Result<Option<(Vec<u8>, u64)>, PowError> {
    let body = CreateBody::parse(body)?;
    let Some(token) = body.challenge_token() else {
        return Ok(None);
    };
    let rec = match book.redeem(token, now) {
        Redeemed::Open(rec) => rec,
        Redeemed::Burned => return Err(PowError::Burned),
        Redeemed::Unknown if redeemer.debt > 0 && pow.extra_checkpoints_per_unit > 0.0 => {
            return Err(PowError::NotIssued)
        }
        Redeemed::Unknown => return Ok(None),
    };
    let required = if rec.issued_to == redeemer.issued_to {
        rec.k_prime
    } else {
        rec.k_prime.max(pow.difficulty_for(redeemer.debt, rec.k, rec.g))
    };
    if required <= rec.k {
        return Ok(None);
    }
    let (checkpoints, concatenated) = body.checkpoints()?;
    let (trimmed, hashes) =
        verify_and_trim(&checkpoints, rec.k, required, rec.g, pow.spot_checks, rng)?;
    let extra: Vec<[u8; 32]> = checkpoints
        .iter()
        .enumerate()
        .skip(rec.k as usize + 1)
        .map(|(i, c)| decode_checkpoint(c, i))
        .collect::<Result<_, _>>()?;
    if !book.first_use(&extra, now) {
        return Err(PowError::ReusedWork);
    }
    Ok(Some((body.with_checkpoints(&trimmed, concatenated)?, hashes)))
}
