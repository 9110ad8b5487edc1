//! Algorithm choice: modern only. Post-quantum hybrid and X25519 key exchange; no
//! SHA-1 signatures, no SHA-1 MACs, no CBC ciphers, no finite-field DH.

use std::borrow::Cow;
use std::time::Duration;

use russh::keys::{Algorithm, Certificate, EcdsaCurve, HashAlg, PrivateKey};
use russh::{MethodKind, MethodSet, Preferred, cipher, kex, mac};

const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// AES-GCM first: with AES-NI it is the fastest on the gateway's own links to
/// targets, where the gateway is the client and its order decides.
const CIPHERS: &[cipher::Name] = &[
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_128_CTR,
];

const MACS: &[mac::Name] = &[
    mac::HMAC_SHA256_ETM,
    mac::HMAC_SHA512_ETM,
    mac::HMAC_SHA256,
    mac::HMAC_SHA512,
];

const KEYS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

pub fn preferred() -> Preferred {
    Preferred {
        kex: Cow::Borrowed(KEX),
        key: Cow::Borrowed(KEYS),
        cipher: Cow::Borrowed(CIPHERS),
        mac: Cow::Borrowed(MACS),
        compression: Cow::Borrowed(&[russh::compression::NONE]),
        ..Preferred::DEFAULT
    }
}

/// The ciphers offered to people's clients. In SSH the client picks: the first
/// of its own list that the server offers. OpenSSH lists ChaCha20-Poly1305
/// first, which costs the gateway about three times what AES-GCM costs per byte
/// on a CPU with AES instructions, so there only AES-GCM is offered by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontCiphers(Vec<cipher::Name>);

/// Why a configured cipher list cannot be offered.
#[derive(Debug, thiserror::Error)]
pub enum CipherListError {
    #[error(
        "the list is empty (give at least one of {})",
        FrontCiphers::allowed_names()
    )]
    Empty,
    #[error(
        "cipher {0:?} cannot be offered (choose from {allowed})",
        allowed = FrontCiphers::allowed_names()
    )]
    Unknown(String),
}

impl FrontCiphers {
    const ALLOWED: &[cipher::Name] = &[
        cipher::AES_128_GCM,
        cipher::AES_256_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_128_CTR,
        cipher::AES_192_CTR,
        cipher::AES_256_CTR,
    ];

    fn allowed_names() -> String {
        Self::ALLOWED
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(", ")
    }

    /// The default for this CPU: AES-GCM only with AES instructions, else
    /// ChaCha20-Poly1305 first (faster in software) and AES-GCM.
    pub fn for_this_cpu() -> Self {
        Self::for_cpu(has_aes_instructions())
    }

    fn for_cpu(hardware_aes: bool) -> Self {
        Self(if hardware_aes {
            vec![cipher::AES_128_GCM, cipher::AES_256_GCM]
        } else {
            vec![
                cipher::CHACHA20_POLY1305,
                cipher::AES_128_GCM,
                cipher::AES_256_GCM,
            ]
        })
    }

    /// An explicit list, in the server's order (which SSH clients ignore).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, CipherListError> {
        if names.is_empty() {
            return Err(CipherListError::Empty);
        }
        names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                Self::ALLOWED
                    .iter()
                    .find(|allowed| allowed.as_ref() == name)
                    .copied()
                    .ok_or_else(|| CipherListError::Unknown(name.to_owned()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(AsRef::as_ref)
    }
}

fn has_aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Whether a signature algorithm a client used to authenticate is acceptable.
pub fn is_modern_signature(algorithm: &Algorithm) -> bool {
    !matches!(algorithm, Algorithm::Rsa { hash: None } | Algorithm::Dsa)
}

fn server_id() -> russh::SshId {
    russh::SshId::Standard(Cow::Borrowed(concat!(
        "SSH-2.0-Vestibule_",
        env!("CARGO_PKG_VERSION")
    )))
}

/// The front end people connect to, presenting `certificates` for the host key.
pub fn server_config(
    single_sign_on: bool,
    ciphers: &FrontCiphers,
    host_key: PrivateKey,
    certificates: Vec<Certificate>,
) -> russh::server::Config {
    let methods: &[MethodKind] = if single_sign_on {
        &[
            MethodKind::PublicKey,
            MethodKind::Password,
            MethodKind::KeyboardInteractive,
        ]
    } else {
        &[MethodKind::PublicKey, MethodKind::Password]
    };
    russh::server::Config {
        certificates,
        server_id: server_id(),
        methods: MethodSet::from(methods),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        preferred: Preferred {
            cipher: Cow::Owned(ciphers.0.clone()),
            ..preferred()
        },
        // Offers are answered uniformly (see `front`), so a client with several
        // keys spends an attempt on each before the right one.
        max_auth_attempts: 10,
        // Interactive sessions may idle for hours; dead peers are found by keepalives.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        maximum_packet_size: MAXIMUM_PACKET_SIZE,
        window_size: CHANNEL_WINDOW,
        channel_buffer_size: CHANNEL_QUEUE,
        ..Default::default()
    }
}

/// Each channel's receive window. The patched russh (third_party/russh) returns
/// window only for bytes the pump has taken, so this is also the most a peer
/// can have queued in the gateway per channel.
const CHANNEL_WINDOW: u32 = 2 * 1024 * 1024;

/// A channel's queue, in messages: room for a whole window even in one-byte
/// packets, plus control messages, so the session loop never waits on a queue
/// (it would stop serving every other channel and direction while it waited).
/// Memory follows what is queued, not this bound.
const CHANNEL_QUEUE: usize = CHANNEL_WINDOW as usize + 256;

/// Channel packets we accept, as large as russh allows: half the packets of
/// its 32 KiB default for the same bytes, and so half the per-packet work
/// (framing, MAC, wake-ups, system calls) on bulk transfers.
const MAXIMUM_PACKET_SIZE: u32 = 65535;

/// The inner server of a ProxyJump hop. The person already authenticated on the
/// outer connection, so the inner one accepts `none` (see `front::jump`).
pub fn jump_config(
    ciphers: &FrontCiphers,
    host_key: PrivateKey,
    certificates: Vec<Certificate>,
) -> russh::server::Config {
    russh::server::Config {
        methods: MethodSet::from(&[MethodKind::None, MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::ZERO,
        keepalive_interval: None,
        ..server_config(false, ciphers, host_key, certificates)
    }
}

/// The back end's connections to targets.
pub fn client_config() -> russh::client::Config {
    russh::client::Config {
        client_id: russh::SshId::Standard(Cow::Borrowed(concat!(
            "SSH-2.0-Vestibule_",
            env!("CARGO_PKG_VERSION")
        ))),
        preferred: preferred(),
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        maximum_packet_size: MAXIMUM_PACKET_SIZE,
        window_size: CHANNEL_WINDOW,
        channel_buffer_size: CHANNEL_QUEUE,
        ..Default::default()
    }
}

/// The back end's connections to targets whose host key is certified by a host
/// CA: certificate host-key algorithms are offered first.
pub fn certified_client_config() -> russh::client::Config {
    let mut config = client_config();
    config.preferred.host_key_certificates = Cow::Borrowed(KEYS);
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_legacy_algorithms() {
        let p = preferred();
        assert!(!p.cipher.iter().any(|c| c.as_ref().ends_with("-cbc")));
        assert!(!p.mac.iter().any(|m| m.as_ref().contains("sha1")));
        assert!(
            !p.kex
                .iter()
                .any(|k| k.as_ref().starts_with("diffie-hellman"))
        );
        assert!(p.key.iter().all(is_modern_signature));
        assert_eq!(p.kex[0].as_ref(), "mlkem768x25519-sha256");
    }

    #[test]
    fn front_ciphers_are_aes_gcm_only_with_aes_instructions() {
        let names = |c: FrontCiphers| c.names().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            names(FrontCiphers::for_cpu(true)),
            ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
        );
        assert_eq!(
            names(FrontCiphers::for_cpu(false))[0],
            "chacha20-poly1305@openssh.com"
        );
    }

    /// Every russh queue allocates 32 slots of its message type when it is
    /// made, idle or not, and a session holds two connections' worth of them.
    /// The fork boxes the rare large variants (third_party/russh/VESTIBULE.md);
    /// this catches a russh upgrade that loses that. Upstream: client `Msg`
    /// 552 bytes, server `Msg` 144, `ChannelMsg` 80.
    #[test]
    fn russh_queue_messages_stay_small() {
        assert!(std::mem::size_of::<russh::client::Msg>() <= 48);
        assert!(std::mem::size_of::<russh::server::Msg>() <= 48);
        assert!(std::mem::size_of::<russh::ChannelMsg>() <= 40);
    }

    #[test]
    fn front_ciphers_named_in_configuration_must_be_modern() {
        let chosen = FrontCiphers::from_names(&["chacha20-poly1305@openssh.com", "aes256-ctr"]);
        assert_eq!(
            chosen.unwrap().names().collect::<Vec<_>>(),
            ["chacha20-poly1305@openssh.com", "aes256-ctr"]
        );
        for refused in ["aes128-cbc", "none", "3des-cbc", "rot13"] {
            let error = FrontCiphers::from_names(&[refused]).unwrap_err();
            assert!(error.to_string().contains(refused), "{error}");
        }
        assert!(matches!(
            FrontCiphers::from_names::<&str>(&[]),
            Err(CipherListError::Empty)
        ));
    }
}
