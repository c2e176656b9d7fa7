//! Random identifiers from the kernel's generator: object uids and the API token.

use std::io::Read;

/// `n` random bytes from `/dev/urandom`.
pub fn bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

/// A random (version 4) UUID, as Kubernetes gives every object.
pub fn uid() -> String {
    // Without the kernel's generator, a uid need only be unique, not secret.
    let mut b = bytes(16).unwrap_or_else(|_| {
        let mut fallback = Vec::with_capacity(16);
        fallback.extend_from_slice(&fastrand::u64(..).to_le_bytes());
        fallback.extend_from_slice(&fastrand::u64(..).to_le_bytes());
        fallback
    });
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
