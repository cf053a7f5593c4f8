package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/dmad/workstation/core/verdict"
)

// broker is a real Mosquitto the test started on 127.0.0.1.
type broker struct {
	t    *testing.T
	bin  string
	conf string
	port int
	cmd  *exec.Cmd
}

// startBroker starts Mosquitto on a free port bound to 127.0.0.1 only, or
// skips the test when it is not installed.
func startBroker(t *testing.T) *broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto is not installed (apt-get install mosquitto, or scripts/setup.sh): skipping the real-broker test")
		}
		bin = "/usr/sbin/mosquitto"
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
	b := &broker{t: t, bin: bin, conf: conf, port: port}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) url() string { return "mqtt://127.0.0.1:" + strconv.Itoa(b.port) }

func (b *broker) start() {
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
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on port %d within 10s", b.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *broker) stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
		b.cmd = nil
	}
}

// subscribe connects a plain paho client and subscribes to topic; the
// messages arrive on the returned channel.
func subscribe(t *testing.T, b *broker, topic string) <-chan *paho.Publish {
	t.Helper()
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(b.port))
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *paho.Publish, 16)
	c := paho.NewClient(paho.ClientConfig{ClientID: "test-sub-" + strconv.Itoa(int(time.Now().UnixNano()%1e6)), Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			msgs <- pr.Packet
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("subscriber connect: %v", err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 2}}}); err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return msgs
}

func receive(t *testing.T, msgs <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no MQTT message within 10s")
		return nil
	}
}

func checkPayload(t *testing.T, m *paho.Publish, want verdict.Verdict) {
	t.Helper()
	var got verdict.Verdict
	if err := json.Unmarshal(m.Payload, &got); err != nil {
		t.Fatalf("payload on %s is not a verdict: %v: %s", m.Topic, err, m.Payload)
	}
	if got.Path != want.Path || got.Score != want.Score || got.Decision != want.Decision || got.Category != want.Category ||
		!got.FileClosed.Equal(want.FileClosed) || got.ModelVersion != want.ModelVersion {
		t.Errorf("payload %+v, want %+v", got, want)
	}
}

func TestMQTTPublishToRealBroker(t *testing.T) {
	b := startBroker(t)
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			msgs := subscribe(t, b, "plant1/#")
			m, err := DialMQTT(MQTTOptions{Broker: b.url(), ClientID: fmt.Sprintf("dmad-test-%d", qos),
				Topic: "plant1/{category}/{decision}", QoS: qos, Logger: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v := sampleVerdict("a.png")
			v.Category = "bot/tle+x" // characters that would change the topic's meaning
			if err := m.Publish(ctx, v); err != nil {
				t.Fatal(err)
			}
			got := receive(t, msgs)
			if got.Topic != "plant1/bot_tle_x/fail" {
				t.Errorf("topic %q, want plant1/bot_tle_x/fail", got.Topic)
			}
			if got.QoS != qos {
				t.Errorf("delivered with QoS %d, want %d", got.QoS, qos)
			}
			checkPayload(t, got, v)
		})
	}
}

func TestMQTTReconnectsAfterBrokerRestart(t *testing.T) {
	b := startBroker(t)
	m, err := DialMQTT(MQTTOptions{Broker: b.url(), ClientID: "dmad-test-reconnect", Topic: "line/{file}", QoS: 1,
		Retain: true, ReconnectDelay: 100 * time.Millisecond, AckTimeout: time.Second, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	b.stop()
	// Publish while the broker is down: it waits for the reconnection.
	v := sampleVerdict("during-outage.png")
	done := make(chan error, 1)
	go func() { done <- m.Publish(ctx, v) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v while the broker was down", err)
	default:
	}
	b.start()
	if err := <-done; err != nil {
		t.Fatalf("Publish after the broker came back: %v", err)
	}
	// The message was retained by the restarted broker: a subscriber that
	// comes now receives it.
	got := receive(t, subscribe(t, b, "line/#"))
	if got.Topic != "line/during-outage.png" {
		t.Errorf("topic %q", got.Topic)
	}
	checkPayload(t, got, v)
}

func TestMQTTOptionErrors(t *testing.T) {
	for _, o := range []MQTTOptions{
		{Broker: "not a url"},
		{Broker: "mqtt://127.0.0.1:1", QoS: 3},
		{Broker: "mqtt://127.0.0.1:1", Topic: "a/#"},
	} {
		if m, err := DialMQTT(o); err == nil {
			m.Close(context.Background())
			t.Errorf("DialMQTT(%+v) succeeded", o)
		}
	}
	// A broker that is not there: Publish gives up at its deadline.
	m, err := DialMQTT(MQTTOptions{Broker: "mqtt://127.0.0.1:1", ReconnectDelay: 50 * time.Millisecond, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.Publish(ctx, sampleVerdict("a.png")); err == nil {
		t.Error("Publish to no broker succeeded")
	}
}

func TestTopic(t *testing.T) {
	v := verdict.Verdict{Path: "/in/x#1.png", Decision: verdict.Pass}
	if got := Topic("a/{category}/{decision}/{file}", v); got != "a/none/pass/x_1.png" {
		t.Errorf("Topic = %q", got)
	}
}
