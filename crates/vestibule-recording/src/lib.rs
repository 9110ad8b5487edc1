//! Session recording for Vestibule: every session channel the gateway pumps
//! is written, as it happens, to a file that survives a crash up to its last
//! flush, and is kept with its integrity hash (BLAKE3, or SHA-256 where FIPS
//! algorithms are required) and metadata.
//!
//! Owns: the recording formats (asciicast v2 for terminals; JSON lines for
//! exec output, byte counts of scp/rsync/forwards, and decoded SFTP file
//! operations), the recording directory (data files, `<id>.meta.json`
//! sidecars, `sweep.log`), uploads to S3-compatible storage, verification,
//! retention, replay and following a live recording, and the clap types of
//! those commands.
//!
//! Must not touch: the SSH protocol or channels (the gateway hands bytes in),
//! authorization (the caller decides whether a target requires recording or
//! input recording), the database, or anything of another session: each
//! recorder has its own buffer, lock and writer task.
//!
//! The gateway's use, per session channel:
//!
//! 1. [`RecordingStore::open`] once at start-up (marks what a crashed process
//!    left as incomplete), then [`RecordingStore::check_storage`] and
//!    [`RecordingStore::spawn_maintenance`].
//! 2. [`RecordingStore::start`] before the channel's first byte moves; an
//!    error refuses the session (`vestibule: {error}, session refused`).
//! 3. For every chunk, *before* forwarding it: [`SessionRecorder::output`],
//!    [`SessionRecorder::stderr`], [`SessionRecorder::input`] (or their
//!    `_shared` forms, which keep a large binary `Bytes` by reference), and
//!    [`SessionRecorder::resize`] / [`SessionRecorder::exit_status`]. These
//!    never block or do I/O. An error means the chunk must not be forwarded
//!    and the session must end (`vestibule: {error}, session ended`).
//!    Awaiting [`SessionRecorder::ready`] between messages turns a slow disk
//!    into backpressure instead.
//! 4. [`SessionRecorder::finish`] when the channel closes.
//!
//! Formats, storage layout and costs: `docs/recording.md`.

mod batch;
pub mod cli;
mod config;
mod digest;
mod encode;
mod error;
mod events;
mod follow;
mod meta;
mod ops;
mod pending;
mod play;
mod recorder;
mod records;
mod s3;
mod sftp;
mod sink;
mod store;
mod writer;

pub use config::{RecordingConfig, S3Config, StorageKind};
pub use digest::{DigestParseError, HashAlgorithm, RecordingDigest};
pub use error::RecordingError;
pub use follow::Follower;
pub use meta::{
    Location, Mode, RecordingInfo, RecordingMeta, SessionKind, State, Traffic, is_file_transfer,
};
pub use ops::{VerifyOutcome, VerifyReport};
pub use play::{PlayOptions, replay_cast, write_transcript};
pub use recorder::{RecordingSummary, SessionRecorder};
pub use records::{RecordedEvent, parse_events};
pub use sftp::{SftpAttrs, SftpDecoder, SftpOp};
pub use store::RecordingStore;
