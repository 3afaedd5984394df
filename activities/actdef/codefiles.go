package actdef

// CodePrefix is where FetchCode keeps each revision's file listing in the
// blob store: code/<deployment>/<revision>/files.json.
const CodePrefix = "code"

// MaxShownFile is the largest text file whose content a revision's listing
// keeps (the API and the web page show the text of small text files only).
const MaxShownFile = 256 << 10

// CodeFiles is a revision's listing as stored in the blob store.
type CodeFiles struct {
	Revision int `json:"revision"`
	// Files are in path order; .git is left out.
	Files []CodeFile `json:"files"`
	// Truncated says more files were there than are listed.
	Truncated bool `json:"truncated,omitempty"`
}

// CodeFile is one file of a revision.
type CodeFile struct {
	// Path is slash-separated, relative to the code folder.
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Text is true for UTF-8 text without control bytes (see activities.isText).
	Text bool `json:"text"`
	// Content is the file's text, kept when it is text of at most
	// MaxShownFile bytes (and the listing's total allows it).
	Content *string `json:"content,omitempty"`
}
