//! Go's `text/tabwriter` column algorithm (left-aligned, space padding), so
//! tables line up byte for byte with docker's: a column block is a run of
//! consecutive lines that have a tab-terminated cell in that column, and its
//! width is the widest such cell plus padding, at least `minwidth`.

pub struct TabWriter {
    minwidth: usize,
    padding: usize,
}

impl TabWriter {
    /// docker's tables: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
    pub fn docker_table() -> Self {
        TabWriter {
            minwidth: 10,
            padding: 3,
        }
    }

    pub fn new(minwidth: usize, padding: usize) -> Self {
        TabWriter { minwidth, padding }
    }

    pub fn format(&self, text: &str) -> String {
        let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
        // A trailing newline ends the last line rather than starting an empty one.
        let trailing_newline = text.ends_with('\n');
        if trailing_newline {
            lines.pop();
        }
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.block(&lines, 0, lines.len(), &mut widths, &mut out);
        if !trailing_newline && out.ends_with('\n') {
            out.pop();
        }
        out
    }

    fn block(
        &self,
        lines: &[Vec<&str>],
        mut line0: usize,
        line1: usize,
        widths: &mut Vec<usize>,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            write_lines(lines, line0, this, widths, out);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(display_width(lines[this][column]) + self.padding);
                this += 1;
            }
            widths.push(width);
            self.block(lines, line0, this, widths, out);
            widths.pop();
            line0 = this;
        }
        write_lines(lines, line0, line1, widths, out);
    }
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                if let Some(w) = widths.get(j) {
                    for _ in display_width(cell)..*w {
                        out.push(' ');
                    }
                }
            }
        }
        out.push('\n');
    }
}

fn display_width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_ps_header_layout() {
        let t = TabWriter::docker_table();
        let s = t.format("CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n");
        assert_eq!(
            s,
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn columns_grow_to_widest_cell() {
        let t = TabWriter::docker_table();
        let s = t.format("A\tB\nlonger-than-ten\tx\n");
        assert_eq!(s, "A                 B\nlonger-than-ten   x\n");
    }

    #[test]
    fn a_line_without_tabs_splits_blocks() {
        let t = TabWriter::new(2, 1);
        let s = t.format("aaaa\tb\nno tabs\nc\td\n");
        assert_eq!(s, "aaaa b\nno tabs\nc d\n");
    }
}
