// A Java program logging through java.util.logging, as legacy services do: a FileHandler with
// the SimpleFormatter (two lines per record), single records between exceptions with "Caused by:"
// chains and "... N more". Each record's exact text (the formatter's output without its last
// newline) also goes, base64-encoded, one per line, to the expected file: what one message must
// hold. Usage: java Writer.java LOG EXPECTED ROUNDS
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.logging.*;

public class Writer {
    static void level3(int i) throws IOException { throw new IOException("disk " + i + " unreadable"); }
    static void level2(int i) { try { level3(i); } catch (IOException e) { throw new IllegalStateException("cannot load " + i, e); } }
    static void level1(int i) { try { level2(i); } catch (IllegalStateException e) { throw new RuntimeException("request " + i + " failed", e); } }

    public static void main(String[] args) throws Exception {
        Logger log = Logger.getLogger("demo");
        log.setUseParentHandlers(false);
        FileHandler file = new FileHandler(args[0], true);
        SimpleFormatter fmt = new SimpleFormatter();
        file.setFormatter(fmt);
        PrintWriter expected = new PrintWriter(new FileWriter(args[1], true));
        log.addHandler(file);
        log.addHandler(new Handler() {
            public void publish(LogRecord r) {
                String text = fmt.format(r);
                text = text.substring(0, text.length() - System.lineSeparator().length());
                expected.println(Base64.getEncoder().encodeToString(text.getBytes(StandardCharsets.UTF_8)));
                expected.flush();
            }
            public void flush() {}
            public void close() {}
        });
        int rounds = Integer.parseInt(args[2]);
        for (int i = 0; i < rounds; i++) {
            log.info("request " + i + " served");
            try { level1(i); } catch (RuntimeException e) { log.log(Level.SEVERE, "request " + i + " crashed", e); }
            log.warning("slow request " + i);
            Thread.sleep(20);
        }
        file.close();
    }
}
