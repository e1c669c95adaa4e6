//! The two standard PDF fonts the invoice is set in (Helvetica and Helvetica-Bold: every reader has
//! them, nothing is embedded), text in their WinAnsi encoding and how wide it is set, so amounts can
//! be aligned on the right and long descriptions wrapped.

use pdf_writer::Name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    Regular,
    Bold,
}

impl Font {
    pub const ALL: [Font; 2] = [Font::Regular, Font::Bold];

    /// The font's name in a page's resources.
    pub fn resource(self) -> Name<'static> {
        match self {
            Self::Regular => Name(b"F1"),
            Self::Bold => Name(b"F2"),
        }
    }

    pub fn base_font(self) -> Name<'static> {
        match self {
            Self::Regular => Name(b"Helvetica"),
            Self::Bold => Name(b"Helvetica-Bold"),
        }
    }

    /// How wide `text` is set at `size` points.
    pub fn width(self, text: &str, size: f32) -> f32 {
        let widths = match self {
            Self::Regular => &HELVETICA,
            Self::Bold => &HELVETICA_BOLD,
        };
        let units: u32 = encode(text)
            .iter()
            .map(|&code| match code {
                32..=126 => u32::from(widths[usize::from(code - 32)]),
                // beyond ASCII, an average letter's width: close enough to align and wrap
                _ => 556,
            })
            .sum();
        units as f32 * size / 1000.0
    }
}

/// Advance widths (thousandths of the size) of the printable ASCII characters, 32 to 126, from
/// Adobe's font metrics of Helvetica and Helvetica-Bold.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611,
    556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389,
    280, 389, 584,
];

/// `text` in WinAnsiEncoding: ASCII and Latin-1 as they are, the typographic characters the
/// encoding has (€, dashes, quotes, …) at their codes, control characters as spaces and anything
/// else as `?`.
pub fn encode(text: &str) -> Vec<u8> {
    text.chars()
        .map(|ch| match ch {
            ' '..='~' | '\u{a0}'..='\u{ff}' => ch as u8,
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => 0x85,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8a,
            '‹' => 0x8b,
            'Œ' => 0x8c,
            'Ž' => 0x8e,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9a,
            '›' => 0x9b,
            'œ' => 0x9c,
            'ž' => 0x9e,
            'Ÿ' => 0x9f,
            c if c.is_control() => b' ',
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_encoded_in_win_ansi() {
        assert_eq!(encode("Pod ¥ – €5"), b"Pod \xa5 \x96 \x805");
        assert_eq!(encode("a\tb 漢"), b"a b ?");
    }

    #[test]
    fn widths_follow_the_font_metrics() {
        // every digit is as wide as every other: amounts align
        assert_eq!(Font::Regular.width("0123456789", 10.0), 55.6);
        assert_eq!(Font::Regular.width("W", 10.0), 9.44);
        assert_eq!(Font::Bold.width("i", 10.0), 2.78);
        assert!(Font::Bold.width("Total", 10.0) > Font::Regular.width("Total", 10.0));
    }
}
