//! The user-agent side: answering a `WWW-Authenticate` / `Proxy-Authenticate`
//! challenge (RFC 3261 §22.2, RFC 2617 §3.2.2).

use super::params::{DigestParams, push_quoted};
use super::{Algorithm, AuthError, request_digest};

/// Builds the `Authorization` (or `Proxy-Authorization`) value answering
/// `challenge` for `method` and request-URI `uri`, with the algorithm challenged
/// (MD5 or SHA-256). With `qop="auth"` offered, `cnonce` and the nonce count `nc`
/// are used (`nc` starts at 1 per nonce); without qop the RFC 2069 form is sent.
pub fn respond(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    let params = DigestParams::parse(challenge).map_err(AuthError::Malformed)?;
    let realm = params
        .get("realm")
        .ok_or(AuthError::Malformed("challenge without realm"))?;
    let nonce = params
        .get("nonce")
        .ok_or(AuthError::Malformed("challenge without nonce"))?;
    let algorithm = match params.get("algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::parse(a).ok_or(AuthError::UnsupportedAlgorithm)?,
    };
    let qop_auth = match params.get("qop") {
        None => false,
        Some(list) => {
            if !list
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            {
                return Err(AuthError::UnsupportedQop);
            }
            true
        }
    };
    let nc_text = format!("{nc:08x}");
    let qop = qop_auth.then_some((nc_text.as_str(), cnonce));
    let ha1 = algorithm.ha1(user, realm, password);
    let response = request_digest(algorithm, &ha1, nonce, qop, method, uri);

    let mut out = String::with_capacity(256);
    out.push_str("Digest username=");
    push_quoted(&mut out, user);
    out.push_str(", realm=");
    push_quoted(&mut out, realm);
    out.push_str(", nonce=");
    push_quoted(&mut out, nonce);
    out.push_str(", uri=");
    push_quoted(&mut out, uri);
    out.push_str(", response=\"");
    out.push_str(&response);
    out.push_str("\", algorithm=");
    out.push_str(algorithm.as_str());
    if let Some((nc, cnonce)) = qop {
        out.push_str(", cnonce=");
        push_quoted(&mut out, cnonce);
        out.push_str(", qop=auth, nc=");
        out.push_str(nc);
    }
    if let Some(opaque) = params.get("opaque") {
        out.push_str(", opaque=");
        push_quoted(&mut out, opaque);
    }
    Ok(out)
}
