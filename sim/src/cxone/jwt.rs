//! RS256 JSON Web Tokens signed with a fixed key (`sim/keys/jwt-signing-key.pem`, a test key
//! that signs nothing real), and the JWKS document that publishes its public half, as the real
//! issuer's `/auth/jwks` does. Clients need not verify the signature, but one that does can.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use serde::Serialize;

/// PKCS#8, PEM.
const SIGNING_KEY_PEM: &str = include_str!("../../keys/jwt-signing-key.pem");

/// The `kid` of the one key.
const KEY_ID: &str = "disposition-sim-1";

/// Signs tokens with the simulator's key.
pub struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

#[derive(Serialize)]
struct Header {
    alg: &'static str,
    typ: &'static str,
    kid: &'static str,
}

/// `{"keys": [...]}` as served at `/auth/jwks`.
#[derive(Serialize)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Serialize)]
struct Jwk {
    kty: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
    kid: &'static str,
    n: String,
    e: String,
}

impl Signer {
    /// # Panics
    /// If the key compiled into the crate is not an RSA PKCS#8 key (a build defect).
    pub fn new() -> Signer {
        let base64: String = SIGNING_KEY_PEM
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD
            .decode(base64)
            .expect("the signing key is base64 PEM");
        let key = RsaKeyPair::from_pkcs8(&der).expect("the signing key is an RSA PKCS#8 key");
        Signer {
            key,
            rng: SystemRandom::new(),
        }
    }

    /// `base64url(header).base64url(claims).base64url(signature)`.
    pub fn sign(&self, claims: &impl Serialize) -> String {
        let header = Header {
            alg: "RS256",
            typ: "JWT",
            kid: KEY_ID,
        };
        let signing_input = format!("{}.{}", segment(&header), segment(claims));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing with a valid key and a buffer of the modulus' length");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    pub fn jwks(&self) -> Jwks {
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(self.key.public());
        Jwks {
            keys: vec![Jwk {
                kty: "RSA",
                use_: "sig",
                alg: "RS256",
                kid: KEY_ID,
                n: URL_SAFE_NO_PAD.encode(&public.n),
                e: URL_SAFE_NO_PAD.encode(&public.e),
            }],
        }
    }
}

/// One base64url JSON part of a token.
fn segment(value: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("headers and claims are plain JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed token verifies against the published key and carries the claims given.
    #[test]
    fn tokens_verify_against_the_jwks() {
        let signer = Signer::new();
        let token = signer.sign(&serde_json::json!({"tenantId": "t-1", "exp": 5}));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["tenantId"], "t-1");
        let jwks = signer.jwks();
        let n = URL_SAFE_NO_PAD.decode(&jwks.keys[0].n).unwrap();
        let e = URL_SAFE_NO_PAD.decode(&jwks.keys[0].e).unwrap();
        let public = RsaPublicKeyComponents { n, e };
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &signature,
            )
            .unwrap();
    }
}
