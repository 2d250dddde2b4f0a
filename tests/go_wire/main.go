// Go's protobuf runtime (the version Centrifugo v6.9.1 is built with) as an oracle for the
// wire rules: reads one hex-encoded input per line, decodes it as a StringValue (field 1 a
// string, every other field unknown) and prints "ok <value hex> <unknown hex>" or "error".
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		data, err := hex.DecodeString(in.Text())
		if err != nil {
			fmt.Fprintln(out, "bad-input")
			continue
		}
		var m wrapperspb.StringValue
		if err := proto.Unmarshal(data, &m); err != nil {
			fmt.Fprintln(out, "error")
			continue
		}
		fmt.Fprintf(out, "ok %x %x\n", []byte(m.Value), []byte(m.ProtoReflect().GetUnknown()))
	}
}
