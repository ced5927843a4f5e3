//! Sizes as people write them: a number of bytes, or a whole number with KiB, MiB or GiB.

/// One kibibyte.
pub const KIB: u64 = 1024;
/// One mebibyte.
pub const MIB: u64 = 1024 * KIB;
/// One gibibyte.
pub const GIB: u64 = 1024 * MIB;
/// One tebibyte.
pub const TIB: u64 = 1024 * GIB;

/// A size that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a size: write a number of bytes, or a whole number followed by KiB, MiB or GiB (8MiB, 1 GiB)")]
pub struct SizeError(pub String);

/// Reads `1048576`, `512KiB`, `8 MiB`, `1GiB` (units are case-insensitive; `B` is bytes).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let error = || SizeError(text.to_owned());
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(error());
    }
    let number: u64 = number.parse().map_err(|_| error())?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        _ => return Err(error()),
    };
    number.checked_mul(multiplier).ok_or_else(error)
}

/// Writes a size the way [`parse_size`] reads it when it is a whole number of units, else with
/// two decimals (`1.50 GiB`).
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes >= size {
            return if bytes % size == 0 {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.2} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_bytes_and_binary_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("5242880"), Ok(5 * MIB));
        assert_eq!(parse_size("512KiB"), Ok(512 * KIB));
        assert_eq!(parse_size("8 MiB"), Ok(8 * MIB));
        assert_eq!(parse_size("8mib"), Ok(8 * MIB));
        assert_eq!(parse_size(" 1GiB "), Ok(GIB));
        assert_eq!(parse_size("100B"), Ok(100));
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            " ",
            "MiB",
            "-1",
            "1.5GiB",
            "8MB",
            "8 M",
            "eight",
            "1e6",
            "99999999999GiB",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.to_string().contains("is not a size"), "{bad}");
        }
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(8 * MIB), "8 MiB");
        assert_eq!(format_size(3 * GIB / 2), "1.50 GiB");
    }

    proptest! {
        #[test]
        fn whole_sizes_round_trip(n in 0u64..1_000_000, unit in 0usize..4) {
            let bytes = n * [1, KIB, MIB, GIB][unit];
            let written = format_size(bytes);
            if !written.contains('.') {
                prop_assert_eq!(parse_size(&written), Ok(bytes));
            }
        }

        #[test]
        fn never_panics(text in "\\PC{0,20}") {
            let _ = parse_size(&text);
        }
    }
}
