// pulumi-resource-gcp, RECORDING TEST DOUBLE: the Go module proxy serves no
// github.com/pulumi/pulumi-gcp/provider module and there is no GCP emulator, so the end-to-end
// tests run the real engine, language host and kubernetes provider against this stand-in for the
// gcp provider alone. Check returns the inputs; Create returns the inputs plus an id and the
// computed fields the program reads, shaped like GCP's but never real: the same placeholders as
// the offline render's mocks (tools/render.py), so what `pulumi up` renders compares with the
// offline render. Every call is appended to $AIWFE_GCP_DOUBLE_RECORD when set; Create and Update
// fail for inputs containing $AIWFE_GCP_DOUBLE_REJECT (a failed `up` on demand). It creates
// nothing anywhere.
package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"aiwfe.local/toolchain/plugins/internal/echo"
)

// Version is set with -ldflags to the version the pulumi-gcp Python SDK asks for.
var Version = "0.0.0"

const project = "mock-project"

func str(inputs map[string]*structpb.Value, key, fallback string) string {
	if v, ok := inputs[key]; ok && v.GetStringValue() != "" {
		return v.GetStringValue()
	}
	return fallback
}

func computed(typ, name string, inputs map[string]*structpb.Value) map[string]*structpb.Value {
	resourceName := str(inputs, "name", name+"-mock")
	out := map[string]*structpb.Value{
		"name":     structpb.NewStringValue(resourceName),
		"selfLink": structpb.NewStringValue(fmt.Sprintf("https://www.googleapis.com/mock/%s/%s", strings.SplitN(typ, ":", 3)[1], resourceName)),
	}
	switch typ {
	case "gcp:compute/globalAddress:GlobalAddress", "gcp:compute/address:Address":
		out["address"] = structpb.NewStringValue(str(inputs, "address", "203.0.113.10")) // TEST-NET-3
	case "gcp:serviceaccount/account:Account":
		email := fmt.Sprintf("%s@%s.iam.gserviceaccount.com", str(inputs, "accountId", name), project)
		out["email"] = structpb.NewStringValue(email)
		out["name"] = structpb.NewStringValue(fmt.Sprintf("projects/%s/serviceAccounts/%s", project, email))
	case "gcp:sql/databaseInstance:DatabaseInstance":
		out["connectionName"] = structpb.NewStringValue(fmt.Sprintf("%s:mock-region:%s", project, resourceName))
		out["privateIpAddress"] = structpb.NewStringValue("10.0.0.5")
	}
	return out
}

func main() {
	echo.Serve("gcp", Version, "AIWFE_GCP_DOUBLE_RECORD", "AIWFE_GCP_DOUBLE_REJECT", computed, false)
}
