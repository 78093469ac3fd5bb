// Runs MobilityData's GTFS Schedule validator on one feed, as its command-line Main does.
//
// Maven Central publishes the validator's libraries but not the CLI jar, so this single file
// (run with the JDK's source launcher: java -cp '<jars>/*' RunValidator.java FEED OUT_DIR
// [YYYY-MM-DD]) builds the same ValidationRunnerConfig and writes report.json to OUT_DIR.
// The validator's online "newer version available" check is skipped so runs work offline.
import java.net.URI;
import java.nio.file.Path;
import java.time.LocalDate;
import org.mobilitydata.gtfsvalidator.input.CountryCode;
import org.mobilitydata.gtfsvalidator.runner.ApplicationType;
import org.mobilitydata.gtfsvalidator.runner.ValidationRunner;
import org.mobilitydata.gtfsvalidator.runner.ValidationRunnerConfig;
import org.mobilitydata.gtfsvalidator.util.VersionResolver;

public class RunValidator {
  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: RunValidator FEED_PATH OUTPUT_DIR [VALIDATION_DATE]");
      System.exit(2);
    }
    URI source = Path.of(args[0]).toAbsolutePath().toUri();
    ValidationRunnerConfig.Builder builder =
        ValidationRunnerConfig.builder()
            .setGtfsSource(source)
            .setOutputDirectory(Path.of(args[1]))
            .setValidationReportFileName("report.json")
            .setHtmlReportFileName("report.html")
            .setSystemErrorsReportFileName("system_errors.json")
            .setNumThreads(1)
            .setCountryCode(CountryCode.forStringOrUnknown("MA"))
            .setPrettyJson(true)
            .setSkipValidatorUpdate(true);
    if (args.length > 2) {
      builder.setDateForValidation(LocalDate.parse(args[2]));
    } else {
      builder.setDateForValidation(LocalDate.now());
    }
    ValidationRunner runner = new ValidationRunner(new VersionResolver(ApplicationType.CLI));
    ValidationRunner.Status status = runner.run(builder.build());
    System.out.println("status " + status);
    System.exit(status == ValidationRunner.Status.SUCCESS ? 0 : 1);
  }
}
