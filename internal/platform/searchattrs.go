package platform

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/algocloud/algocloud/workflows"
)

// checkSearchAttributes makes sure the namespace has every search attribute
// a Deployment workflow carries (workflows.SearchAttributeKeys), as an
// operator creates them on a cluster (docs/architecture.md).
//
// Missing ones are an error naming them with the commands that create
// them, not a warning: Temporal refuses to start a workflow or to upsert
// with an attribute it does not know, so the API could create no
// deployment and every workflow task that upserts would fail until they
// exist. When the list itself is refused (no operator permission), the
// check cannot tell and only warns.
func (p *Platform) checkSearchAttributes(ctx context.Context) error {
	ns := p.opts.Namespace
	have, err := p.Client.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		p.log.Warn("could not list the namespace's search attributes to check that the Algocloud* ones exist (docs/architecture.md, \"Search attributes\")",
			"namespace", ns, "error", err)
		return nil
	}
	return missingSearchAttributes(ns, p.opts.TemporalAddress, have.GetCustomAttributes(), workflows.SearchAttributeTypes())
}

// missingSearchAttributes is nil when have holds every attribute of want
// with its type, else an error listing the `temporal operator
// search-attribute create` commands to run.
func missingSearchAttributes(namespace, address string, have, want map[string]enums.IndexedValueType) error {
	var missing, wrong []string
	for name, typ := range want {
		got, ok := have[name]
		switch {
		case !ok:
			missing = append(missing, name)
		case got != typ:
			wrong = append(wrong, fmt.Sprintf("%s is a %s, want %s", name, typeName(got), typeName(typ)))
		}
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return fmt.Errorf("namespace %s has search attributes of the wrong type: %s; they cannot be changed in place: remove them (temporal operator search-attribute remove) and create them again", namespace, strings.Join(wrong, "; "))
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	var cmds strings.Builder
	for _, name := range missing {
		fmt.Fprintf(&cmds, "\n  temporal operator search-attribute create --address %s --namespace %s --name %s --type %s", address, namespace, name, typeName(want[name]))
	}
	return fmt.Errorf("namespace %s lacks the search attributes %s that deployment workflows carry (Temporal refuses to start or update a workflow with an unknown one); create them once:%s",
		namespace, strings.Join(missing, ", "), cmds.String())
}

// typeName is a search attribute type as the temporal CLI's --type names it
// (Keyword, Int, ...: the enum's short form).
func typeName(t enums.IndexedValueType) string { return t.String() }
