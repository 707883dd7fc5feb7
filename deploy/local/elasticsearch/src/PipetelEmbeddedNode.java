import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.transport.Netty4Plugin;

/**
 * Runs one real Elasticsearch node inside this JVM for pipetel's integration tests.
 *
 * <p>Elasticsearch's published jars have no launcher of their own (the distribution's bootstrap
 * also expects modules/ and a bundled JDK), so this subclass reaches the protected constructor that
 * accepts classpath plugins, and passes the netty4 plugin for the HTTP and transport layers.
 *
 * <p>Usage: {@code java -cp 'libs/*:classes' PipetelEmbeddedNode key=value ...} where each
 * argument is a node setting. The node stops cleanly on SIGTERM through a shutdown hook.
 */
public final class PipetelEmbeddedNode extends Node {

    private PipetelEmbeddedNode(Environment environment) {
        super(environment, List.of(Netty4Plugin.class), true);
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got [" + arg + "]");
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();
        String nodeName = settings.get("node.name", "pipetel-test");
        Path configDir = null; // path.home/config; it need not exist.
        Environment environment =
                InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), configDir, () -> nodeName);

        PipetelEmbeddedNode node = new PipetelEmbeddedNode(environment);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "pipetel-node-shutdown"));
        node.start();
        System.out.println("pipetel embedded node started: " + nodeName);
        stopped.await();
    }
}
