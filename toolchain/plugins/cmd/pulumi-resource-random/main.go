// pulumi-resource-random, STAND-IN: the Go module proxy refuses
// github.com/pulumi/pulumi-random/provider/v4, so this plugin serves the one resource the program
// uses, random:index/randomPassword:RandomPassword, with real randomness (crypto/rand) from the
// character classes its inputs allow. Like the real provider, any input change replaces the
// resource; the result is returned as a secret.
package main

import (
	"crypto/rand"
	"math/big"

	"google.golang.org/protobuf/types/known/structpb"

	"aiwfe.local/toolchain/plugins/internal/echo"
)

// Version is set with -ldflags to the version the pulumi-random Python SDK asks for.
var Version = "0.0.0"

const (
	lower   = "abcdefghijklmnopqrstuvwxyz"
	upper   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	numeric = "0123456789"
	special = "!@#$%&*()-_=+[]{}<>:?"
	// The engine's marker for a secret value on the wire.
	sigKey    = "4dabf18193072939515e22adb298388d"
	secretSig = "1b47061264138c4ac30d75fd1eb44270"
)

func boolInput(inputs map[string]*structpb.Value, key string, fallback bool) bool {
	if v, ok := inputs[key]; ok {
		if _, isBool := v.GetKind().(*structpb.Value_BoolValue); isBool {
			return v.GetBoolValue()
		}
	}
	return fallback
}

func password(inputs map[string]*structpb.Value) string {
	length := 16
	if v, ok := inputs["length"]; ok && v.GetNumberValue() > 0 {
		length = int(v.GetNumberValue())
	}
	alphabet := ""
	if boolInput(inputs, "lower", true) {
		alphabet += lower
	}
	if boolInput(inputs, "upper", true) {
		alphabet += upper
	}
	if boolInput(inputs, "numeric", true) {
		alphabet += numeric
	}
	if boolInput(inputs, "special", true) {
		if v, ok := inputs["overrideSpecial"]; ok && v.GetStringValue() != "" {
			alphabet += v.GetStringValue()
		} else {
			alphabet += special
		}
	}
	if alphabet == "" {
		alphabet = lower
	}
	out := make([]byte, length)
	limit := big.NewInt(int64(len(alphabet)))
	for i := range out {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			panic(err)
		}
		out[i] = alphabet[n.Int64()]
	}
	return string(out)
}

func secret(value string) *structpb.Value {
	return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		sigKey:  structpb.NewStringValue(secretSig),
		"value": structpb.NewStringValue(value),
	}})
}

func computed(typ, _ string, inputs map[string]*structpb.Value) map[string]*structpb.Value {
	if typ != "random:index/randomPassword:RandomPassword" && typ != "random:index/randomString:RandomString" {
		return map[string]*structpb.Value{}
	}
	result := password(inputs)
	out := map[string]*structpb.Value{"result": structpb.NewStringValue(result)}
	if typ == "random:index/randomPassword:RandomPassword" {
		out["result"] = secret(result)
	}
	return out
}

func main() {
	echo.Serve("random", Version, "AIWFE_RANDOM_STANDIN_RECORD", "", computed, true)
}
