package workflows

import "github.com/algocloud/algocloud/activities/actdef"

// ServingAndStaged derives, from the state alone, which revision serves and which
// is staged, for the API, the wizard, the CLI and the store's list row. It
// reads and never changes the state, so it adds nothing to any history.
//
// serving is nil unless the endpoint is live. staged is the working copy
// when Complete would change what was last completed: other code, another
// install, or a spec change that asked for a new test (Step short of
// completed); nil when the working copy is what was completed, which a
// stopped deployment serves again on Start, and when there is no code yet.
func (s *State) ServingAndStaged() (serving *actdef.ServingRevision, staged *actdef.StagedRevision) {
	done := s.completed()
	if done != nil && s.Status == StatusLive && s.Live != nil {
		serving = &actdef.ServingRevision{
			CodeRevision:    done.Code.Revision,
			Commit:          done.Code.Commit,
			Source:          done.Code.Source,
			InstallRevision: done.Install.Revision,
			Requirements:    done.Install.Requirements,
			Since:           s.Live.Since,
			Endpoint:        s.Live.Endpoint,
		}
		if serving.Requirements == nil {
			serving.Requirements = []string{}
		}
	}
	if s.Code == nil || s.Status == StatusDeleting || s.Status == StatusDeleted {
		return serving, nil
	}
	installed := s.Install != nil && s.Install.CodeRevision == s.Code.Revision
	if done != nil && s.Step == StepCompleted && done.Code.Revision == s.Code.Revision &&
		(!installed || done.Install.Revision == s.Install.Revision) {
		return serving, nil
	}
	staged = &actdef.StagedRevision{CodeRevision: s.Code.Revision, Commit: s.Code.Commit}
	if installed {
		staged.InstallRevision = s.Install.Revision
		staged.Tested = s.Test != nil && s.Test.CodeRevision == s.Code.Revision && s.Test.InstallRevision == s.Install.Revision
		staged.TestPassed = staged.Tested && s.Test.OK
	}
	return serving, staged
}

// completed is what the endpoint serves when live (and serves again on
// Start): Serving, or for states from before Serving existed the working
// copy's code and install when Live runs that code revision (otherwise only
// the revision number is known). nil when nothing was ever completed.
func (s *State) completed() *Serving {
	switch {
	case s.Status == StatusDraft || s.Live == nil:
		return nil
	case s.Serving != nil:
		return s.Serving
	}
	done := &Serving{Spec: s.Spec, Code: actdef.CodeInfo{Revision: s.Live.CodeRevision}}
	if s.Code != nil && s.Code.Revision == s.Live.CodeRevision {
		done.Code = *s.Code
		if s.Install != nil && s.Install.CodeRevision == s.Code.Revision {
			done.Install = *s.Install
		}
	}
	return done
}
