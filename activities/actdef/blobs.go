package actdef

// Blob key prefixes: the API puts uploads under UploadsPrefix/<deployment>/,
// Test Code puts its output under TestsPrefix/<deployment>/<revision>/.
const (
	UploadsPrefix = "uploads"
	TestsPrefix   = "tests"
)
