//! The decoder against hand-built packets cut at every boundary.

use super::*;

fn string(b: &mut Vec<u8>, s: &[u8]) {
    b.extend_from_slice(&(s.len() as u32).to_be_bytes());
    b.extend_from_slice(s);
}

fn packet(ty: u8, id: Option<u32>, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut p = vec![ty];
    if let Some(id) = id {
        p.extend_from_slice(&id.to_be_bytes());
    }
    body(&mut p);
    let mut framed = (p.len() as u32).to_be_bytes().to_vec();
    framed.extend(p);
    framed
}

fn status(id: u32, code: u32) -> Vec<u8> {
    packet(FXP_STATUS, Some(id), |b| {
        b.extend_from_slice(&code.to_be_bytes());
        string(b, b"msg");
        string(b, b"");
    })
}

fn handle(id: u32, h: &[u8]) -> Vec<u8> {
    packet(FXP_HANDLE, Some(id), |b| string(b, h))
}

fn open(id: u32, path: &[u8], pflags: u32) -> Vec<u8> {
    packet(FXP_OPEN, Some(id), |b| {
        string(b, path);
        b.extend_from_slice(&pflags.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
    })
}

fn write(id: u32, h: &[u8], offset: u64, len: usize) -> Vec<u8> {
    packet(FXP_WRITE, Some(id), |b| {
        string(b, h);
        b.extend_from_slice(&offset.to_be_bytes());
        string(b, &vec![0xab; len]);
    })
}

fn by_handle(ty: u8, id: u32, h: &[u8]) -> Vec<u8> {
    packet(ty, Some(id), |b| string(b, h))
}

fn by_path(ty: u8, id: u32, p: &[u8]) -> Vec<u8> {
    packet(ty, Some(id), |b| string(b, p))
}

/// (from the client?, bytes), in the order they cross the channel.
fn conversation() -> Vec<(bool, Vec<u8>)> {
    let mut c = Vec::new();
    let mut client = |b: Vec<u8>| c.push((true, b));
    client(packet(FXP_INIT, None, |b| {
        b.extend_from_slice(&3u32.to_be_bytes())
    }));
    let mut v = vec![(
        false,
        packet(FXP_VERSION, None, |b| {
            b.extend_from_slice(&3u32.to_be_bytes())
        }),
    )];
    c.append(&mut v);
    let steps: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (open(1, b"/tmp/a.txt", 0x02 | 0x08 | 0x10), handle(1, b"h1")),
        (write(2, b"h1", 0, 1000), status(2, 0)),
        (write(3, b"h1", 1000, 40_000), status(3, 0)),
        (by_handle(FXP_CLOSE, 4, b"h1"), status(4, 0)),
        (open(5, b"/nope", 0x01), status(5, 2)),
        (open(6, b"/tmp/a.txt", 0x01), handle(6, b"h2")),
        (
            packet(FXP_READ, Some(7), |b| {
                string(b, b"h2");
                b.extend_from_slice(&0u64.to_be_bytes());
                b.extend_from_slice(&32768u32.to_be_bytes());
            }),
            packet(FXP_DATA, Some(7), |b| string(b, &vec![1u8; 30_000])),
        ),
        (
            packet(FXP_READ, Some(8), |b| {
                string(b, b"h2");
                b.extend_from_slice(&30000u64.to_be_bytes());
                b.extend_from_slice(&32768u32.to_be_bytes());
            }),
            status(8, 1),
        ),
        (by_handle(FXP_CLOSE, 9, b"h2"), status(9, 0)),
        (
            packet(FXP_RENAME, Some(10), |b| {
                string(b, b"/tmp/a.txt");
                string(b, b"/tmp/b.txt");
            }),
            status(10, 0),
        ),
        (
            packet(FXP_EXTENDED, Some(11), |b| {
                string(b, b"posix-rename@openssh.com");
                string(b, b"/tmp/b.txt");
                string(b, b"/tmp/c.txt");
            }),
            status(11, 0),
        ),
        (
            packet(FXP_SETSTAT, Some(12), |b| {
                string(b, b"/tmp/c.txt");
                b.extend_from_slice(&4u32.to_be_bytes());
                b.extend_from_slice(&0o100600u32.to_be_bytes());
            }),
            status(12, 0),
        ),
        (by_path(FXP_MKDIR, 13, b"/tmp/d"), status(13, 0)),
        (by_path(FXP_RMDIR, 14, b"/tmp/d"), status(14, 0)),
        (by_path(FXP_REMOVE, 15, b"/tmp/c.txt"), status(15, 3)),
        (by_path(FXP_OPENDIR, 16, b"/tmp"), handle(16, b"d1")),
        (
            by_handle(12, 17, b"d1"),
            packet(104, Some(17), |b| b.extend_from_slice(&[0u8; 5000])),
        ),
        (by_handle(FXP_CLOSE, 18, b"d1"), status(18, 0)),
        (open(19, b"/tmp/left", 0x02 | 0x08), handle(19, b"h3")),
        (write(20, b"h3", 0, 10), status(20, 0)),
    ];
    for (req, rep) in steps {
        c.push((true, req));
        c.push((false, rep));
    }
    c
}

fn expected() -> Vec<SftpOp> {
    let ok = || "ok".to_owned();
    vec![
        SftpOp::Open {
            path: "/tmp/a.txt".into(),
            flags: "write,creat,trunc".into(),
            status: ok(),
        },
        SftpOp::Close {
            path: "/tmp/a.txt".into(),
            bytes_read: 0,
            bytes_written: 41_000,
            status: ok(),
        },
        SftpOp::Open {
            path: "/nope".into(),
            flags: "read".into(),
            status: "no such file".into(),
        },
        SftpOp::Open {
            path: "/tmp/a.txt".into(),
            flags: "read".into(),
            status: ok(),
        },
        SftpOp::Close {
            path: "/tmp/a.txt".into(),
            bytes_read: 30_000,
            bytes_written: 0,
            status: ok(),
        },
        SftpOp::Rename {
            from: "/tmp/a.txt".into(),
            to: "/tmp/b.txt".into(),
            status: ok(),
        },
        SftpOp::Rename {
            from: "/tmp/b.txt".into(),
            to: "/tmp/c.txt".into(),
            status: ok(),
        },
        SftpOp::Setstat {
            path: "/tmp/c.txt".into(),
            attrs: SftpAttrs {
                mode: Some("600".into()),
                ..Default::default()
            },
            status: ok(),
        },
        SftpOp::Mkdir {
            path: "/tmp/d".into(),
            status: ok(),
        },
        SftpOp::Rmdir {
            path: "/tmp/d".into(),
            status: ok(),
        },
        SftpOp::Remove {
            path: "/tmp/c.txt".into(),
            status: "permission denied".into(),
        },
        SftpOp::Opendir {
            path: "/tmp".into(),
            status: ok(),
        },
        SftpOp::Open {
            path: "/tmp/left".into(),
            flags: "write,creat".into(),
            status: ok(),
        },
        SftpOp::Close {
            path: "/tmp/left".into(),
            bytes_read: 0,
            bytes_written: 10,
            status: "not closed".into(),
        },
    ]
}

fn run(chunk: impl Fn(usize) -> usize) -> Vec<SftpOp> {
    let mut d = SftpDecoder::new();
    let mut ops = Vec::new();
    let mut n = 0;
    for (from_client, bytes) in conversation() {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let k = chunk(n).clamp(1, rest.len());
            n += 1;
            if from_client {
                d.feed_client(&rest[..k]);
            } else {
                d.feed_server(&rest[..k]);
            }
            rest = &rest[k..];
            ops.extend(d.take_ops());
        }
    }
    d.finish();
    ops.extend(d.take_ops());
    ops
}

#[test]
fn decodes_file_operations_whatever_the_chunk_boundaries() {
    assert_eq!(run(|_| usize::MAX), expected());
    for size in [1, 2, 3, 4, 5, 7, 9, 13, 64, 1000, 4096] {
        assert_eq!(run(|_| size), expected(), "chunks of {size}");
    }
    // A pseudo-random mix of sizes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let sizes: Vec<usize> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 700) as usize + 1
        })
        .collect();
    assert_eq!(run(|n| sizes[n % sizes.len()]), expected());
}

#[test]
fn garbage_stops_decoding_once() {
    let mut d = SftpDecoder::new();
    d.feed_client(&[0, 0, 0, 0, 1, 2, 3]);
    d.feed_client(&[0, 0, 0, 0]);
    let ops: Vec<_> = d.take_ops().collect();
    assert_eq!(ops.len(), 1);
    assert!(matches!(ops[0], SftpOp::Undecodable { .. }));
}
