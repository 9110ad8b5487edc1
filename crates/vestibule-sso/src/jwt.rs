//! Compact JWS (the id_token) and the provider's JSON Web Key Set: just what
//! OpenID Connect needs, with asymmetric algorithms only (never `none`, never
//! HMAC with the client secret).

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::SsoError;

/// A provider's signing keys (`jwks_uri`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Jwks {
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default, rename = "use")]
    pub usage: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
}

/// A token split into its parts; nothing is trusted yet.
pub(crate) struct Parsed<'a> {
    pub header: Header,
    pub signing_input: &'a [u8],
    pub claims: serde_json::Map<String, serde_json::Value>,
    pub signature: Vec<u8>,
}

fn invalid(what: &str) -> SsoError {
    SsoError::Invalid(format!("id_token: {what}"))
}

pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, SsoError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a compact JWS"));
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| invalid("bad base64url"))
    };
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| invalid("bad header"))?;
    let claims = serde_json::from_slice(&decode(payload)?).map_err(|_| invalid("bad claims"))?;
    Ok(Parsed {
        header,
        signing_input: &token.as_bytes()[..header_and_payload_len(token)],
        claims,
        signature: decode(signature)?,
    })
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn family(alg: &str) -> Option<&'static str> {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => Some("RSA"),
        "ES256" | "ES384" => Some("EC"),
        "EdDSA" => Some("OKP"),
        _ => None,
    }
}

/// Whether the token's algorithm is one we accept at all.
pub(crate) fn supported(alg: &str) -> bool {
    family(alg).is_some()
}

/// The key that may have signed a token with `header`, if the set holds one.
pub(crate) fn select<'k>(jwks: &'k Jwks, header: &Header) -> Option<&'k Jwk> {
    let family = family(&header.alg)?;
    let mut candidates = jwks.keys.iter().filter(|k| {
        k.kty == family
            && k.usage.as_deref().is_none_or(|u| u == "sig")
            && k.alg.as_deref().is_none_or(|a| a == header.alg)
            && match (&header.kid, &k.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                (Some(_), None) => false,
                (None, _) => true,
            }
    });
    let first = candidates.next()?;
    // Without a kid, only an unambiguous key will do.
    if header.kid.is_none() && candidates.next().is_some() {
        return None;
    }
    Some(first)
}

fn field(value: &Option<String>) -> Result<Vec<u8>, SsoError> {
    let value = value.as_deref().ok_or_else(|| invalid("incomplete key"))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| invalid("bad key encoding"))
}

/// Check the signature of `parsed` with `key`.
pub(crate) fn verify(parsed: &Parsed<'_>, key: &Jwk) -> Result<(), SsoError> {
    let message = parsed.signing_input;
    let signature = parsed.signature.as_slice();
    let ok = match parsed.header.alg.as_str() {
        alg @ ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512") => {
            let params: &'static signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            let n = field(&key.n)?;
            let e = field(&key.e)?;
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(params, message, signature)
                .is_ok()
        }
        alg @ ("ES256" | "ES384") => {
            let (algorithm, curve): (&'static signature::EcdsaVerificationAlgorithm, _) =
                if alg == "ES256" {
                    (&signature::ECDSA_P256_SHA256_FIXED, "P-256")
                } else {
                    (&signature::ECDSA_P384_SHA384_FIXED, "P-384")
                };
            if key.crv.as_deref() != Some(curve) {
                return Err(invalid("key curve does not match the algorithm"));
            }
            let mut point = vec![4u8];
            point.extend(field(&key.x)?);
            point.extend(field(&key.y)?);
            UnparsedPublicKey::new(algorithm, &point)
                .verify(message, signature)
                .is_ok()
        }
        "EdDSA" => {
            if key.crv.as_deref() != Some("Ed25519") {
                return Err(invalid("only Ed25519 is supported for EdDSA"));
            }
            let x = field(&key.x)?;
            UnparsedPublicKey::new(&signature::ED25519, &x)
                .verify(message, signature)
                .is_ok()
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid("bad signature"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    #[test]
    fn es256_round_trip_and_tamper() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = pair.public_key().as_ref();
        let key = Jwk {
            kty: "EC".into(),
            kid: Some("k1".into()),
            usage: Some("sig".into()),
            alg: None,
            n: None,
            e: None,
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(&public[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&public[33..65])),
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice"}"#);
        let input = format!("{header}.{payload}");
        let sig = pair.sign(&rng, input.as_bytes()).unwrap();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        let parsed = parse(&token).unwrap();
        let jwks = Jwks {
            keys: vec![key.clone()],
        };
        let chosen = select(&jwks, &parsed.header).unwrap();
        verify(&parsed, chosen).unwrap();
        assert_eq!(parsed.claims["sub"], "alice");

        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#);
        let forged = token.replace(&payload, &forged_payload);
        assert!(verify(&parse(&forged).unwrap(), &key).is_err());
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
        );
        let parsed = parse(&none).unwrap();
        assert!(!supported(&parsed.header.alg));
        assert!(select(&jwks, &parsed.header).is_none());
    }
}
