package actdef

// Temporal application error types (ApplicationError.Type()) of the
// activities' non-retryable failures, which the workflow and API branch on.
// They are strings, not sentinel errors: match them with the error's Type().
// Their values are recorded in workflow histories: never change a value.
const (
	// BadInputErrorType: the request or its files are wrong; retrying cannot help.
	BadInputErrorType = "BadInput"
	// InstallFailedErrorType: installing the requirements failed.
	InstallFailedErrorType = "InstallFailed"
	// SourceFailedErrorType: fetching the code (Git, archive, edit) failed.
	SourceFailedErrorType = "SourceFailed"
	// InitFailedErrorType: the algorithm's __init__ failed (it will fail again).
	InitFailedErrorType = "InitFailed"
	// AgentFailedErrorType: the server's agent cannot start (it exits as
	// soon as it is started, or its binary cannot be run); retrying the
	// step cannot help until that is fixed.
	AgentFailedErrorType = "AgentFailed"
)
