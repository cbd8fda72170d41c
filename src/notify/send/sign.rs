//! Standard Webhooks signatures (SPEC §8.2): `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`.
//!
//! The key is the base64-decoded remainder of a `whsec_...` secret (the form Standard
//! Webhooks libraries generate and verify), or the secret's raw bytes when it has no such
//! prefix, so a receiver that verifies with any of those libraries accepts our requests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

use crate::config::Secret;

/// The prefix of a Standard Webhooks secret whose remainder is base64.
const SECRET_PREFIX: &str = "whsec_";

/// A secret starting with `whsec_` whose remainder is not base64. The message names neither
/// the secret nor any part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MalformedSecret;

impl std::fmt::Display for MalformedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the webhook secret starts with `whsec_` but the rest is not valid base64")
    }
}

/// The HMAC key a secret stands for.
fn signing_key(secret: &Secret) -> Result<hmac::Key, MalformedSecret> {
    let value = secret.expose();
    let key_bytes = match value.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => STANDARD.decode(encoded).map_err(|_| MalformedSecret)?,
        None => value.as_bytes().to_vec(),
    };
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &key_bytes))
}

/// The `webhook-signature` header value for one request.
pub(super) fn signature(
    secret: &Secret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, MalformedSecret> {
    let key = signing_key(secret)?;
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    Ok(format!("v1,{}", STANDARD.encode(tag.as_ref())))
}
