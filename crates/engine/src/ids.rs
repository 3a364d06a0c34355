//! Object IDs and container names as Docker makes them.

use crate::error::{Error, Result};

/// 64 lower-case hex characters from the OS's random source.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    // getrandom only fails when the kernel has no entropy source at all.
    getrandom::fill(&mut b).expect("the kernel's random source is unavailable");
    hex::encode(b)
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, a leading `/` allowed.
/// Docker's name rule for containers and local volumes: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn is_valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && n.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

pub fn validate_name(name: &str) -> Result<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    if !is_valid_name(n) {
        return Err(Error::invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

const LEFT: &[&str] = &[
    "admiring", "bold", "brave", "calm", "clever", "eager", "elated", "focused", "gallant",
    "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "serene", "sharp", "stoic",
    "tender", "upbeat", "vibrant", "wizardly", "zealous",
];
const RIGHT: &[&str] = &[
    "archimedes",
    "babbage",
    "curie",
    "darwin",
    "euclid",
    "fermat",
    "galileo",
    "hopper",
    "kepler",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "turing",
    "wozniak",
];

/// A random `adjective_scientist` name; the caller retries on collision.
pub fn random_name(attempt: u32) -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let l = LEFT[b[0] as usize % LEFT.len()];
    let r = RIGHT[b[1] as usize % RIGHT.len()];
    if attempt == 0 {
        format!("{l}_{r}")
    } else {
        format!("{l}_{r}{}", u16::from_le_bytes([b[2], b[3]]) % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_name("/web").unwrap(), "web");
        assert!(validate_name("a").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert_eq!(new_id().len(), 64);
    }
}
