package tool

import "fmt"

// ExitError carries the exit code a verb wants (check uses 2 and 3, compare
// 1 and 2). Err is the message to print; nil means the verb already printed
// what went wrong and only the code matters.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }
