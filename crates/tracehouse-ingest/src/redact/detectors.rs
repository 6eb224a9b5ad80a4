//! The built-in detectors' patterns and the checks a regex cannot express (Luhn, digit counts).
//!
//! Every pattern is ASCII-only and uses ASCII word boundaries (`(?-u:\b)`): a Unicode `\b`
//! makes the regex crate's fast DFA give up on any non-ASCII text, which LLM content often is.

use super::config::Detector;

/// The regex of a detector. `secret`, when present, is the part that is replaced.
pub(super) fn pattern(detector: Detector) -> &'static str {
    match detector {
        Detector::Email => {
            r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?-u:\b)"
        }
        // Either a `+` country code followed by 2 to 4 groups, or a North American number
        // written with separators. Bare digit runs are not phone numbers here: they are far
        // more often counts, ids and timestamps.
        Detector::Phone => concat!(
            r"\+[0-9]{1,3}(?:[ .-]?\(?[0-9]{1,4}\)?){2,4}(?-u:\b)",
            r"|(?:\([0-9]{3}\)[ .-]?|(?-u:\b)[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}(?-u:\b)",
        ),
        // Issuers' first digits are 3 to 6; the Luhn check below weeds out the rest.
        Detector::CreditCard => r"(?-u:\b)[3-6][0-9](?:[ -]?[0-9]){11,17}(?-u:\b)",
        Detector::IpAddress => concat!(
            r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}",
            r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)",
            r"|(?-u:\b)(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?-u:\b)",
            r"|(?-u:\b)(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?",
        ),
        Detector::ApiKey => concat!(
            r"(?-u:\b)(?:sk-[A-Za-z0-9_-]{20,}",
            r"|AKIA[0-9A-Z]{16}",
            r"|gh[pousr]_[A-Za-z0-9]{36,}",
            r"|xox[abposr]-[A-Za-z0-9-]{10,}",
            r"|AIza[0-9A-Za-z_-]{35})",
        ),
        Detector::Jwt => r"(?-u:\b)eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*",
        Detector::BearerToken => r"(?-u:\b)(?i:bearer)[ \t]+(?P<secret>[A-Za-z0-9._~+/=-]{16,})",
    }
}

/// A check on a match the regex cannot make; `None` when the regex says it all.
pub(super) fn validator(detector: Detector) -> Option<fn(&str) -> bool> {
    match detector {
        Detector::CreditCard => Some(passes_luhn),
        Detector::Phone => Some(plausible_phone_digits),
        _ => None,
    }
}

/// The Luhn checksum card numbers carry, over the digits of `text` (13 to 19 of them).
pub(super) fn passes_luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum % 10 == 0
}

/// E.164 numbers have at most 15 digits; fewer than 7 is a short code or a fragment.
fn plausible_phone_digits(text: &str) -> bool {
    let count = text.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&count)
}
