package mongocache.it;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.ServerVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

/** mongo-java-server, in memory, on 127.0.0.1:PORT until killed. */
public final class Server {
    public static void main(String[] args) throws InterruptedException {
        if (args.length != 1) {
            System.err.println("usage: Server PORT");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        // MONGO_5_0: the Node.js driver 6.x needs wire version >= 8.
        MongoServer server = new MongoServer(new MemoryBackend().version(ServerVersion.MONGO_5_0));
        server.bind("127.0.0.1", port);
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
        System.out.println("listening on 127.0.0.1:" + port);
        Thread.currentThread().join();
    }
}
