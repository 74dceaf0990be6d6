package notify

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var (
	textMail = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/mail.txt.tmpl"))
	htmlMail = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/mail.html.tmpl"))
)

// Email is one message to one address. Text is the service's plain-text
// notice; the HTML alternative is rendered from it.
type Email struct {
	// ID becomes the Message-ID, the same on every attempt.
	ID      string
	To      string
	Subject string
	Text    string
	// At is when the notice was written (the Date header).
	At time.Time
}

// Rendered is a mail's two bodies.
type Rendered struct {
	Text string
	HTML string
}

// part is a run of text, a link when Link is set.
type part struct {
	Text string
	Link string
}

// Render renders a notice as plain text and HTML with the embedded
// templates. Only URLs that start with linkPrefix (Recourse's own public
// URL) become links in the HTML: text such as a user agent string comes
// from whoever made the request, and must not turn into a link in a
// security notice.
func Render(issuer, subject, text, linkPrefix string) (Rendered, error) {
	var out Rendered
	var tb bytes.Buffer
	if err := textMail.Execute(&tb, map[string]any{"Issuer": issuer, "Text": strings.TrimRight(text, "\n") + "\n"}); err != nil {
		return out, err
	}
	var paragraphs [][][]part
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		var lines [][]part
		for _, line := range strings.Split(para, "\n") {
			lines = append(lines, linkify(line, linkPrefix))
		}
		paragraphs = append(paragraphs, lines)
	}
	var hb bytes.Buffer
	if err := htmlMail.Execute(&hb, map[string]any{"Issuer": issuer, "Subject": subject, "Paragraphs": paragraphs}); err != nil {
		return out, err
	}
	out.Text, out.HTML = tb.String(), hb.String()
	return out, nil
}

// linkify splits a line into text and links to URLs under prefix.
func linkify(line, prefix string) []part {
	if prefix == "" {
		return []part{{Text: line}}
	}
	var parts []part
	for {
		i := strings.Index(line, prefix)
		if i < 0 {
			break
		}
		end := strings.IndexAny(line[i:], " \t")
		if end < 0 {
			end = len(line) - i
		}
		link := strings.TrimRight(line[i:i+end], ".,;:)")
		if len(link) < len(prefix) {
			link = prefix
		}
		if i > 0 {
			parts = append(parts, part{Text: line[:i]})
		}
		parts = append(parts, part{Text: link, Link: link})
		line = line[i+len(link):]
	}
	if line != "" {
		parts = append(parts, part{Text: line})
	}
	return parts
}
