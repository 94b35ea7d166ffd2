// vcsim for corral's tests: VMware's vCenter simulator (govmomi's simulator package) on plain
// http, with a chosen number of clusters, hosts and VMs and optional per-method delays.
// It prints its URL (http://user:pass@host:port/sdk) on the first line of stdout and serves
// until SIGINT or SIGTERM.
//
// Built from Debian's packages golang-go and golang-github-vmware-govmomi-dev:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o vcsim .
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	clusters := flag.Int("cluster", 1, "clusters")
	hosts := flag.Int("host", 3, "hosts per cluster")
	vms := flag.Int("vm", 2, "VMs per resource pool")
	delays := flag.String("method-delay", "", "Method=ms,... per-method delays")
	username := flag.String("username", "user", "the only user name accepted at login")
	password := flag.String("password", "pass", "its password")
	flag.Parse()

	model := simulator.VPX()
	model.Cluster = *clusters
	model.ClusterHost = *hosts
	model.Host = 0
	model.Machine = *vms
	if *delays != "" {
		model.DelayConfig.MethodDelay = map[string]int{}
		for _, pair := range strings.Split(*delays, ",") {
			kv := strings.SplitN(pair, "=", 2)
			ms, err := strconv.Atoi(kv[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "bad -method-delay:", pair)
				os.Exit(2)
			}
			model.DelayConfig.MethodDelay[kv[0]] = ms
		}
	}
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// a user of its own (not vcsim's default one) makes Login check the credentials
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	server := model.Service.NewServer()
	fmt.Println(server.URL.String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	server.Close()
	model.Remove()
}
