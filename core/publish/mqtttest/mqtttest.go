// Package mqtttest starts a real Mosquitto broker for tests, on a free
// port bound to 127.0.0.1 only, and subscribes to it with paho. Tests skip
// with a message when Mosquitto is not installed.
package mqtttest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Broker is a Mosquitto process the test started.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	// Port is the TCP port it listens on (127.0.0.1 only).
	Port int
	cmd  *exec.Cmd
}

// Start starts Mosquitto with a temporary configuration (anonymous
// clients, no persistence, 127.0.0.1 only) and stops it when the test
// ends. It skips the test when mosquitto is not installed.
func Start(t testing.TB) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto is not installed (apt-get install mosquitto, or scripts/setup.sh): skipping the real-broker test")
		}
		bin = "/usr/sbin/mosquitto" // Debian installs it outside a user's PATH
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &Broker{t: t, bin: bin, conf: conf, Port: port}
	b.Restart()
	t.Cleanup(b.Stop)
	return b
}

// URL is the broker's mqtt:// address.
func (b *Broker) URL() string { return "mqtt://127.0.0.1:" + strconv.Itoa(b.Port) }

// Restart starts the broker again on the same port (after Stop) and waits
// until it accepts connections.
func (b *Broker) Restart() {
	b.t.Helper()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	if testing.Verbose() {
		b.cmd.Stderr = os.Stderr // the broker's log
	}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.Port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on port %d within 10s", b.Port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the broker (a crash, as far as clients can tell).
func (b *Broker) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
		b.cmd = nil
	}
}

// Subscribe connects a plain paho client, subscribes to topic with QoS 2
// and returns the messages as they arrive.
func (b *Broker) Subscribe(topic string) <-chan *paho.Publish {
	b.t.Helper()
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(b.Port))
	if err != nil {
		b.t.Fatal(err)
	}
	msgs := make(chan *paho.Publish, 256)
	c := paho.NewClient(paho.ClientConfig{Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			msgs <- pr.Packet
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{KeepAlive: 30, CleanStart: true}); err != nil {
		b.t.Fatalf("subscriber connect: %v", err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 2}}}); err != nil {
		b.t.Fatalf("subscribe %s: %v", topic, err)
	}
	b.t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return msgs
}

// Receive waits up to 10s for the next message.
func Receive(t testing.TB, msgs <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no MQTT message within 10s")
		return nil
	}
}
