//! Bearer tokens: compact JWTs signed with HMAC-SHA256 by this server, carrying Docker's
//! `access` claim (`[{type, name, actions}]`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<AccessEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    Signature,
    #[error("token expired or not yet valid")]
    Expired,
    #[error("token is for another service or issuer")]
    WrongAudience,
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub struct TokenSigner {
    key: Vec<u8>,
    pub issuer: String,
    pub service: String,
}

impl TokenSigner {
    pub fn new(key: Vec<u8>, issuer: String, service: String) -> TokenSigner {
        TokenSigner {
            key,
            issuer,
            service,
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let expected = hmac_sha256(&self.key, format!("{h}.{p}").as_bytes());
        if !constant_time_eq(&sig, &expected) {
            return Err(TokenError::Signature);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        // A little leeway for clock steps between issue and use.
        if claims.exp < now || claims.nbf > now.saturating_add(30) {
            return Err(TokenError::Expired);
        }
        if claims.aud != self.service || claims.iss != self.issuer {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_known_answer() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sign_verify_tamper() {
        let s = TokenSigner::new(b"k".to_vec(), "iss".into(), "svc".into());
        let c = Claims {
            iss: "iss".into(),
            sub: "alice".into(),
            aud: "svc".into(),
            exp: 200,
            nbf: 100,
            iat: 100,
            jti: "x".into(),
            access: vec![AccessEntry {
                kind: "repository".into(),
                name: "a/b".into(),
                actions: vec!["pull".into()],
            }],
        };
        let t = s.sign(&c);
        assert_eq!(s.verify(&t, 150).unwrap().access, c.access);
        assert_eq!(s.verify(&t, 300).unwrap_err(), TokenError::Expired);
        let mut forged = t.clone();
        forged.push('A');
        assert!(s.verify(&forged, 150).is_err());
        let other = TokenSigner::new(b"k2".to_vec(), "iss".into(), "svc".into());
        assert_eq!(other.verify(&t, 150).unwrap_err(), TokenError::Signature);
        assert_eq!(s.verify("a.b", 150).unwrap_err(), TokenError::Malformed);
    }
}
